"""What a container can hold, probed on in-memory containers (nothing is written), and the
temporary files of stopped runs: helpers of :mod:`rtderain.media.writer`."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import av

from rtderain.errors import MediaError

log = logging.getLogger(__name__)

# Containers a refused stream is checked against, to say which would take it.
_SUGGESTED_CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov"}
# Text subtitle codec each container takes, for the conversion the error suggests.
_TEXT_SUBTITLES = {".mkv": "srt", ".mp4": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}


def memory_muxer(name: str) -> Any | None:
    """A write container for a file called ``name`` (its extension picks the muxer), in
    memory: nothing is written. None when FFmpeg has no muxer for that name. Close it."""
    buf = io.BytesIO()
    buf.name = name
    try:
        return av.open(buf, mode="w")
    except (av.FFmpegError, OSError, ValueError):
        return None


def _container_takes(path: Path, encoder: str) -> bool | None:
    """Whether the muxer for ``path``'s extension accepts ``encoder`` (PyAV's own check in
    ``add_stream``, on an in-memory container); None: no muxer for that extension."""
    container = memory_muxer(path.name)
    if container is None:
        return None
    try:
        container.add_stream(encoder)
    except ValueError:
        return False
    finally:
        container.close()
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporary files ``.NAME.partial-PID.ext`` beside ``path`` left by runs
    that were killed (their PID is no longer running); returns what was removed."""
    pattern = re.compile(
        rf"\.{re.escape(path.stem)}\.partial-(\d+){re.escape(path.suffix)}"
    )
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and int(match[1]) != os.getpid() and not _running(int(match[1])):
            try:
                entry.unlink()
            except OSError as exc:
                log.warning("cannot remove stale temporary file %s: %s", entry, exc)
                continue
            log.info("removed %s, left by a stopped run (PID %s)", entry, match[1])
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_copies(templates: tuple[Any, ...], path: str | Path) -> None:
    """Raise :func:`refused_copy`'s error for the first of ``templates`` (input streams to
    copy) that the container of ``path`` (by its suffix) refuses; nothing is written."""
    out = memory_muxer(Path(path).name)
    if out is None:  # no container for this suffix: VideoWriter's error says so
        return
    try:
        for template in templates:
            try:
                out.add_stream_from_template(template)
            except ValueError:
                raise MediaError(refused_copy(template, Path(path))) from None
    finally:
        out.close()


def _takes(fmt: str, template: Any) -> bool:
    """Whether the ``fmt`` muxer takes a packet copy of ``template`` (its header is written
    to memory, so the muxer's own checks run)."""
    out = av.open(io.BytesIO(), mode="w", format=fmt)
    try:
        out.add_stream_from_template(template)
        out.start_encoding()
        return True
    except (ValueError, av.FFmpegError):
        return False
    finally:
        try:
            out.close()
        except av.FFmpegError as exc:
            log.debug("closing the %s probe container: %s", fmt, exc)


def refused_copy(template: Any, path: Path) -> str:
    """The one-line error for a stream the output container of ``path`` cannot store:
    which containers would take it, and how to convert or drop it for this one."""
    kind, name, index = template.type, template.codec_context.name, template.index
    suffix = path.suffix.lower()
    source = Path(getattr(template.container, "name", "") or "IN")
    others = [ext for ext, fmt in _SUGGESTED_CONTAINERS.items()
              if ext != suffix and _takes(fmt, template)]
    text = f"{kind} codec {name!r} of input stream #{index} cannot be stored in a {suffix} file"
    where = f"write {' or '.join(others)} instead, or " if others else ""
    if kind == "subtitle":
        target = _TEXT_SUBTITLES.get(suffix)
        convert = (f"convert them first (ffmpeg -i {source.name} -map 0 -c copy -c:s {target} "
                   f"{source.stem}-{target}{suffix}) or " if target else "")
        return (f"{text}: {where}{convert}drop them (ffmpeg -i {source.name} -map 0 -map -0:s "
                f"-c copy {source.stem}-nosubs{source.suffix})")
    return (f"{text}: {where}convert the stream first (ffmpeg -i {source.name} -map 0 -c copy "
            f"-c:{index} CODEC {source.stem}-converted{suffix})")
