"""The engine cache: built artifacts under ``engines/``, keyed by every build input.

An artifact's file name encodes the model, weights digest, backend, precision, batch, shape
and device, plus a short hash of the full key (which adds the runtime versions and backend
settings). A JSON sidecar beside it records the key and the artifact's SHA-256, so a file
that was truncated, edited or built by another runtime version is detected, logged as a
warning and rebuilt, never used.

Writes are atomic (temporary name in the same folder, fsync, ``os.replace``) and serialised
per artifact with an exclusive ``fcntl`` lock, so two processes building the same engine at
once end with one valid artifact: the second waits, then loads what the first built.

A folder this process cannot write (a read-only mount, a shared cache of another user) is
still used: valid artifacts load from it (only reading), and one that must be built is
built in a temporary folder for this run, with one warning.

Folder: ``--engines-dir`` option, else ``$RTDERAIN_ENGINES``, else the repository's
top-level ``engines/`` (``~/.cache/rtderain/engines`` for an installed package).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

try:  # POSIX; elsewhere builds are still atomic, only not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import torch

from rtderain import __version__, util
from rtderain.backends.base import BackendUnavailable, BuildRejected, BuildSpec

log = logging.getLogger(__name__)

ENV_VAR = "RTDERAIN_ENGINES"
SIDECAR_FORMAT = "rtderain-engine"
_REPO_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


def engines_dir(option: str | Path | None = None) -> Path:
    """The cache folder: ``option``, else ``$RTDERAIN_ENGINES``, else ``<repo>/engines``."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / "engines"
    return Path.home() / ".cache" / "rtderain" / "engines"


def normalise_device(device: torch.device | str) -> torch.device:
    """``cuda`` -> ``cuda:N`` (the current GPU, 0 without CUDA): one device, one cache key."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return torch.device("cuda", index)
    return device


def device_versions(device: torch.device | str) -> dict[str, str]:
    """What a GPU artifact depends on besides the runtimes: the GPU's compute capability
    and the CUDA runtime torch was built with (``{}`` on a CPU, so CPU keys do not move)."""
    device = torch.device(device)
    if device.type != "cuda":
        return {}
    major, minor = torch.cuda.get_device_capability(device)
    return {"compute_capability": f"{major}.{minor}", "cuda_runtime": str(torch.version.cuda)}


def device_name(device: torch.device | str) -> str:
    """Human name of the device an artifact is built for (CPU model or GPU name)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return util.cpu_name()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "x"


@dataclass(frozen=True)
class ArtifactKey:
    """Every input an engine artifact depends on; equal keys mean a reusable artifact."""

    spec: BuildSpec
    backend: str
    device_name: str
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.spec),
            "backend": self.backend,
            "device_name": self.device_name,
            "versions": dict(sorted(self.versions.items())),
            "settings": dict(sorted(self.settings.items())),
        }

    def as_stored(self) -> Any:
        """:meth:`to_dict` as a sidecar holds it once read back (JSON types only)."""
        return json.loads(json.dumps(self.to_dict(), default=str))

    @property
    def digest(self) -> str:
        """Short SHA-256 of the whole key (versions and settings included)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def stem(self) -> str:
        """Readable, unique file stem.

        e.g. ``mgid-rt_<weights>_openvino_bf16-u8_b1_640x368_<cpu>_<key hash>`` (``-u8``: the
        uint8 graph interface).
        """
        s = self.spec
        return "_".join(
            [
                _slug(s.model),
                s.digest,
                self.backend,
                s.precision if s.io == "float" else f"{s.precision}-{s.io}",
                f"b{s.batch}",
                f"{s.width}x{s.height}",
                _slug(self.device_name),
                self.digest,
            ]
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then fsync and rename onto ``path``; the temp file never survives."""
    util.atomic_write(path, write)


@contextlib.contextmanager
def _locked(fh: Any) -> Iterator[None]:
    """Exclusive inter-process lock on the open lock file ``fh`` (blocks until free)."""
    with fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class EngineCache:
    """Artifacts in one folder; :meth:`get_or_build` is the whole API."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = engines_dir(root)

    def paths(self, key: ArtifactKey, suffix: str) -> tuple[Path, Path]:
        """(artifact, JSON sidecar) paths for ``key``."""
        stem = key.stem()
        return self.root / f"{stem}{suffix}", self.root / f"{stem}.json"

    def problem(self, key: ArtifactKey, suffix: str) -> str | None:
        """Why the cached artifact for ``key`` cannot be used (None: it can; 'missing')."""
        artifact, sidecar = self.paths(key, suffix)
        if not artifact.is_file() and not sidecar.is_file():
            return "missing"
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            return f"unreadable sidecar {sidecar.name} ({exc})"
        if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
            return f"{sidecar.name} is not an rtderain engine sidecar"
        expected = key.as_stored()
        stored = meta.get("key") if isinstance(meta.get("key"), dict) else {}
        if stored != expected:
            changed = sorted(k for k in expected if stored.get(k) != expected[k])
            return f"incompatible artifact (differs in {', '.join(changed) or 'key'})"
        if not artifact.is_file():
            return f"artifact {artifact.name} is missing"
        if meta.get("sha256") != _sha256(artifact):
            return f"corrupt artifact {artifact.name} (checksum mismatch)"
        return None

    def get_or_build(
        self,
        key: ArtifactKey,
        suffix: str,
        build: Callable[[Path], None],
        load: Callable[[Path], T],
    ) -> T:
        """Load the artifact for ``key``, building it first if missing, corrupt or stale.

        Args:
            build: writes the artifact to the given (temporary) path.
            load: turns a valid artifact path into a ready object; if it raises on a file
                that passed the checksum, the file is rebuilt once with a warning, except
                :class:`BackendUnavailable` (the runtime cannot run here, e.g. its GPU
                provider did not load): no file would do, so it propagates.
        """
        artifact, sidecar = self.paths(key, suffix)
        self._raise_if_rejected(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = (self.root / f".{key.stem()}.lock").open("a")
        except OSError as exc:  # not writable: read from it, build elsewhere
            return self._read_only(key, suffix, build, load, exc)
        with _locked(lock):
            problem = self.problem(key, suffix)
            if problem is None:
                try:
                    log.info("engine cache: reusing %s", artifact.name)
                    return load(artifact)
                except BackendUnavailable:
                    raise
                except Exception as exc:  # a runtime rejecting its own file: rebuild
                    problem = f"artifact {artifact.name} failed to load ({exc})".splitlines()[0]
            if problem != "missing":
                log.warning("engine cache: %s; rebuilding", problem)
            try:
                self._build(key, artifact, sidecar, build)
            except BuildRejected as exc:
                self._remember_rejection(key, str(exc))
                raise
            return load(artifact)

    def rejection_path(self, key: ArtifactKey) -> Path:
        """Where the verdict of a :class:`BuildRejected` build of ``key`` is kept."""
        return self.root / f"{key.stem()}.rejected.json"

    def _raise_if_rejected(self, key: ArtifactKey) -> None:
        path = self.rejection_path(key)
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # none (or unreadable: build again)
        expected = key.as_stored()
        if isinstance(meta, dict) and meta.get("key") == expected:
            raise BuildRejected(f"{meta.get('reason', 'rejected')} (remembered in {path}; "
                                "delete it to try again)")

    def _remember_rejection(self, key: ArtifactKey, reason: str) -> None:
        meta = {"format": SIDECAR_FORMAT, "key": key.to_dict(), "reason": reason,
                "rejected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with contextlib.suppress(OSError):  # a read-only cache only forgets the verdict
            _write_atomic(self.rejection_path(key),
                          lambda p: p.write_text(json.dumps(meta, indent=2, default=str) + "\n"))

    def _read_only(self, key: ArtifactKey, suffix: str, build: Callable[[Path], None],
                   load: Callable[[Path], T], why: OSError) -> T:
        """:meth:`get_or_build` for a folder this process cannot write: load a valid
        artifact without locking; else build in a temporary folder (removed at exit)."""
        artifact, _ = self.paths(key, suffix)
        problem = self.problem(key, suffix)
        if problem is None:
            try:
                log.info("engine cache: reusing %s (read-only folder)", artifact.name)
                return load(artifact)
            except Exception as exc:  # as in get_or_build: rebuild, here in a temp folder
                problem = f"artifact {artifact.name} failed to load ({exc})".splitlines()[0]
        tmp = Path(tempfile.mkdtemp(prefix="rtderain-engine-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        reason = "" if problem == "missing" else f"{problem}; "
        log.warning("engine cache: %scannot write %s (%s); building %s in %s for this run "
                    "only", reason, self.root, why.strerror or why, artifact.name, tmp)
        build(tmp / artifact.name)
        return load(tmp / artifact.name)

    def _build(
        self, key: ArtifactKey, artifact: Path, sidecar: Path, build: Callable[[Path], None]
    ) -> None:
        sidecar.unlink(missing_ok=True)  # an artifact without a valid sidecar is never used
        log.info("engine cache: building %s", artifact.name)
        start = time.perf_counter()
        _write_atomic(artifact, build)
        meta = {
            "format": SIDECAR_FORMAT,
            "key": key.to_dict(),
            "artifact": artifact.name,
            "sha256": _sha256(artifact),
            "bytes": artifact.stat().st_size,
            "build_seconds": round(time.perf_counter() - start, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rtderain": __version__,
        }
        _write_atomic(
            sidecar, lambda p: p.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        )
        log.info("engine cache: built %s in %.1f s", artifact.name, meta["build_seconds"])
