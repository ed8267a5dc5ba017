"""Small helpers with one home: atomic writes, sizes, the data root, machine facts.

Nothing here imports torch, PyAV or click, so every layer (library, CLI, tools) can use it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtderain.errors import RTDerainError

DATA_ENV = "RTDERAIN_DATA"


def atomic_write(
    path: str | Path,
    write: Callable[[Path], None],
    *,
    fsync: bool = True,
    overwrite: bool = True,
) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, then rename it onto
    ``path``. Readers see the old file or the complete new one, never a partial one; on any
    error (or Ctrl-C) the temporary file is removed and ``path`` is untouched.

    With ``overwrite=False`` the rename never replaces a file: one that appeared at ``path``
    meanwhile is kept, and the result stays beside it under :func:`kept_name` (the error
    says where).

    The file gets the usual mode (``0666 & ~umask``), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            finish_noreplace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_creatable(path: str | Path, what: str) -> None:
    """``path`` (a folder) exists and is writable, or can be created: else one line naming
    ``what`` (the setting it came from) and the ancestor in the way."""
    path = existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is not a folder" if not existing.is_dir() else "is not writable"
        raise RTDerainError(f"{what}: cannot create {path}: {existing} {why}")


def kept_name(path: str | Path) -> Path:
    """Where a finished result goes when ``path`` appeared during the run:
    ``NAME.rtderain-PID.ext`` beside it (visible, never cleaned up automatically)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rtderain-{os.getpid()}{path.suffix}")


def finish_noreplace(tmp: str | Path, path: str | Path) -> None:
    """Rename the finished ``tmp`` to ``path`` unless something exists there now.

    If ``path`` exists (created by someone else during the run), ``tmp`` is renamed to
    :func:`kept_name` instead and :class:`RTDerainError` says so, naming both files.
    """
    try:
        rename_noreplace(tmp, path)
    except FileExistsError:
        kept = kept_name(path)
        rename_noreplace(tmp, kept)
        raise RTDerainError(
            f"output {path} appeared during the run and was not replaced "
            f"(use --overwrite to replace it); the result is kept as {kept}"
        ) from None


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst`` atomically, failing with :class:`FileExistsError` if ``dst``
    exists (``renameat2(RENAME_NOREPLACE)`` on Linux; else a hard link then unlink; on a
    filesystem with neither, an existence check then a rename)."""
    src_b, dst_b = os.fsencode(src), os.fsencode(dst)
    fn = _renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, src_b, _AT_FDCWD, dst_b, _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), os.fsdecode(dst_b))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), os.fsdecode(dst_b))
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                             errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status`` on Linux):
    setting it to read it would, for that moment, give files other threads create
    (the encoder's, a recording's) mode 0666. Elsewhere it is set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the most restrictive value while it is being read
        os.umask(mask)
    return mask


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value`` (both positive)."""
    return -(-value // multiple) * multiple


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to ``multiple``: the shape the network sees for an (H, W) frame."""
    return round_up(height, multiple), round_up(width, multiple)


def parse_size(text: str, where: str = "size") -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. ``1280x720``) -> ``(width, height)``, both >= 1.

    ``where`` names the option in the error (``--size``, ``--capture-size``, ...).
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise RTDerainError(f"{where}: {text!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    return int(match[1]), int(match[2])


def data_root(option: str | Path | None, flag: str = "--data-root") -> Path:
    """The benchmark data folder: ``option`` if given, else ``$RTDERAIN_DATA``.

    There is no built-in default (no machine path in the product); the error says how to
    give one. The folder must exist.
    """
    raw = option if option is not None else os.environ.get(DATA_ENV)
    if not raw:
        raise RTDerainError(f"no benchmark data folder: pass {flag} DIR or set ${DATA_ENV}")
    path = Path(raw).expanduser()
    if not path.is_dir():
        source = flag if option is not None else f"${DATA_ENV}"
        raise RTDerainError(f"benchmark data folder not found: {path} (from {source})")
    return path


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux), else the platform's processor."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def machine_info() -> dict[str, Any]:
    """Facts a benchmark reports beside its numbers: CPU, cores, OS, Python, torch, PyAV.

    Imports torch and PyAV only when they are already installed (versions as strings).
    """
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for name in ("torch", "av"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        info[name] = getattr(module, "__version__", "?")
    return info


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")
_SECRET_QUERY = re.compile(
    r"([?&](?:password|passwd|pass|pwd|passphrase|token|secret|key|auth)=)[^&#]*", re.IGNORECASE
)

_RTMP = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts"})


def _redact_one(url: str) -> str:
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, host = netloc.rpartition("@")  # FFmpeg's split: the last @ before the path
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    if scheme.lower() in _RTMP and tail.startswith("/"):  # rtmp://host/app/STREAM-KEY
        path, sep, query = tail.partition("?")
        app, slash, key = path[1:].partition("/")
        tail = f"/{app}{slash}{'***' if key else ''}{sep}{query}"
    return f"{scheme}://{netloc}" + _SECRET_QUERY.sub(r"\1***", tail)


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it hidden, for logs, errors and output.

    ``rtsp://admin:secret@cam/live`` -> ``rtsp://admin:***@cam/live``; query values named
    like a secret (``password``, ``passphrase``, ``token``, ``key``, ...) become ``***``
    too, and so does an RTMP URL's stream key (the path after the application:
    ``rtmp://a.rtmp.youtube.com/live2/abcd-1234`` -> ``rtmp://a.rtmp.youtube.com/live2/***``).
    Text that holds no URL (a file name) is returned unchanged.
    """
    return _URL.sub(lambda m: _redact_one(m.group(0)), text)
