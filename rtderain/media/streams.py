"""The input's other streams: which reach the output beside the de-rained video, and why not.

Copied where the output's container can hold them: audio and subtitles (as packets),
extra video tracks (as packets, when the container takes their codec), Matroska
attachments such as the fonts ASS subtitles need (into a Matroska output), and a
``tmcd`` timecode track (written again by the .mov/.mp4 muxer from the start timecode).
Anything else is dropped with one warning naming the stream, or, with ``strict``, is
an error before any work starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtderain.errors import MediaError
from rtderain.media.containers import memory_muxer
from rtderain.media.reader import VideoReader

log = logging.getLogger(__name__)

_TIMECODE_FORMATS = {"mov", "mp4"}  # the muxers that write a tmcd track from the timecode


@dataclass(frozen=True)
class StreamPlan:
    """What happens to each input stream besides the de-rained one.

    Attributes:
        copy: streams whose packets are copied (audio, subtitles, extra video).
        attachments: attachment streams embedded again (Matroska to Matroska).
        timecode: the start timecode (``HH:MM:SS:FF``) of a timecode track kept, or None.
        dropped: one line per stream not copied: which stream and why.
    """

    copy: tuple[Any, ...] = ()
    attachments: tuple[Any, ...] = ()
    timecode: str | None = None
    dropped: tuple[str, ...] = ()

    @property
    def kept(self) -> int:
        """Streams that reach the output beside the video."""
        return len(self.copy) + len(self.attachments) + (self.timecode is not None)


def _output_format(output: Path) -> tuple[str | None, set[str]]:
    """The muxer FFmpeg picks for ``output``'s name and the codecs it takes (empty: any);
    (None, set()) when the name has no known container (the writer reports that)."""
    container = memory_muxer(f"probe{output.suffix}")
    if container is None:
        return None, set()
    try:
        return container.format.name, set(container.supported_codecs or ())
    finally:
        container.close()


def describe(stream: Any) -> str:
    """``stream #2 (attachment font.ttf)``: a stream in a warning or an error."""
    meta = stream.metadata or {}
    if stream.type == "attachment":
        what = stream.name or meta.get("filename") or "?"
    elif stream.type == "data" and meta.get("timecode"):
        what = f"timecode {meta['timecode']}"
    elif stream.codec_context is not None:
        what = stream.codec_context.name
    else:
        what = meta.get("handler_name") or "unknown codec"
    return f"stream #{stream.index} ({stream.type} {what})"


def plan_streams(reader: VideoReader, output: str | Path) -> StreamPlan:
    """Decide, for every stream of ``reader`` other than its video, what ``output`` keeps."""
    output = Path(output)
    fmt, supported = _output_format(output)
    kind = output.suffix or "such"
    copy: list[Any] = []
    attachments: list[Any] = []
    timecode: str | None = None
    dropped: list[str] = []
    for s in reader.container.streams:
        if s is reader.stream:
            continue
        meta = s.metadata or {}
        if s.type in ("audio", "subtitle"):
            copy.append(s)  # an unsupported codec is the writer's error, naming the stream
        elif s.type == "video":
            name = s.codec_context.name
            if fmt is not None and (not supported or name in supported):
                copy.append(s)
            else:
                dropped.append(f"{describe(s)}: a {kind} file cannot hold {name} video")
        elif s.type == "attachment":
            if fmt == "matroska":
                attachments.append(s)
            else:
                dropped.append(f"{describe(s)}: only Matroska (.mkv) files hold attachments")
        elif s.type == "data" and meta.get("timecode"):
            if fmt in _TIMECODE_FORMATS and timecode is None:
                timecode = meta["timecode"]
            else:
                dropped.append(f"{describe(s)}: a {kind} file has no timecode track "
                               "(.mov and .mp4 have)")
        else:
            dropped.append(f"{describe(s)}: {s.type} streams are not copied")
    return StreamPlan(tuple(copy), tuple(attachments), timecode, tuple(dropped))


def report_dropped(plan: StreamPlan, source: str | Path, output: str | Path,
                   strict: bool = False) -> None:
    """One warning per dropped stream; with ``strict`` one error naming them all."""
    if strict and plan.dropped:
        raise MediaError(f"{source}: --strict: not copied to {output}: "
                         + "; ".join(plan.dropped))
    for line in plan.dropped:
        log.warning("%s: %s is not copied", source, line)


def check_strict(source: str | Path, output: str | Path) -> None:
    """Before any work: an error if ``output`` would drop any stream of ``source``."""
    reader = VideoReader(source)
    try:
        report_dropped(plan_streams(reader, output), source, output, strict=True)
    finally:
        reader.close()
