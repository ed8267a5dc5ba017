"""Video encoding and muxing with PyAV: the file sink.

:class:`VideoWriter` writes under a temporary name beside the target and renames it into
place only in :meth:`VideoWriter.close`, after the encoder is flushed; :meth:`abort`
removes the temporary file. Frame timestamps are the caller's (source ``pts`` in the
source ``time_base``), never rebuilt from a frame rate. Audio and subtitle streams are
copied as packets from their input streams (``add_stream_from_template``).
"""

from __future__ import annotations

import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from rtderain import util
from rtderain.errors import MediaError
from rtderain.media.colour import ColourInfo, hdr_params, rgb_to_frame
from rtderain.media.encoders import (  # noqa: F401  (re-exported: the writer's options)
    EncodeOptions,
    check_encoder,
    encoder_options,
)

log = logging.getLogger(__name__)

# Encoders that code interlaced pictures as such (interlaced DCT and motion estimation).
_INTERLACED_CODECS = {"libx264", "mpeg2video", "mpeg4"}
_TOP_FIRST = {2, 5}  # AV_FIELD_TT, AV_FIELD_BT: the top field is displayed first


def choose_pix_fmt(
    codec: av.Codec, options: EncodeOptions, colour: ColourInfo, width: int, height: int
) -> str:
    """Output pixel format: the user's, else the source's, adjusted to what the encoder takes."""
    supported = [f.name for f in (codec.video_formats or ())]
    if options.pix_fmt:
        if supported and options.pix_fmt not in supported:
            raise MediaError(
                f"encoder {codec.name} does not take pixel format {options.pix_fmt!r} "
                f"(it takes: {', '.join(supported)})"
            )
        return options.pix_fmt
    want = colour.pix_fmt.replace("yuvj", "yuv")
    odd = width % 2 or height % 2
    if odd and ("420" in want or "422" in want or "411" in want or "410" in want):
        want = want.replace("420", "444").replace("422", "444")
        log.warning("odd frame size %dx%d: encoding as %s to keep every pixel", width, height, want)
    if not supported or want in supported:
        return want
    deep = colour.bit_depth > 8
    for cand in (
        ["yuv444p10le", "yuv420p10le", "yuv444p", "yuv420p"] if deep else ["yuv444p", "yuv420p"]
    ):
        if cand in supported and (not odd or "444" in cand):
            log.warning("encoder %s does not take %s: using %s", codec.name, want, cand)
            return cand
    return supported[0]


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


class VideoWriter:
    """Encode RGB frames (plus copied packet streams) into ``path``.

    Args:
        path: final output path; the container format comes from its suffix.
        width, height: frame size (odd sizes kept).
        time_base: time base of the ``pts`` passed to :meth:`write` (the source's).
        frame_rate: nominal rate for the encoder's rate control (never used for timestamps).
        colour: source colour description (matrix, range, tags, bit depth).
        options: encoder settings.
        copy_streams: input streams (audio, subtitles) whose packets :meth:`mux` copies.
        overwrite: the final rename may replace a file at ``path``. Without it (the default)
            it never does, not even for a file created there during the run: the finished
            output is then kept beside it as ``NAME.rtderain-PID.ext`` and :meth:`close`
            raises an error saying so.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        frame_rate: Fraction | None,
        colour: ColourInfo,
        options: EncodeOptions,
        copy_streams: tuple[Any, ...] = (),
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.tmp_path = self.path.with_name(
            f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}"
        )
        remove_stale_partials(self.path)
        self.time_base = time_base
        self.colour = colour
        self.frames = 0
        self.muxed = 0  # video packets in the file so far (frames, once encoded)
        codec = check_encoder(options)
        self.pix_fmt = choose_pix_fmt(codec, options, colour, width, height)
        try:
            self.container = av.open(str(self.tmp_path), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot write {self.path}: {exc}".splitlines()[0]) from None
        try:
            self.stream = self._add_video(codec, options, width, height, frame_rate)
            self._copies = {s.index: self._add_copy(s) for s in copy_streams}
        except BaseException:
            self.abort()
            raise

    def _add_video(
        self,
        codec: av.Codec,
        options: EncodeOptions,
        width: int,
        height: int,
        frame_rate: Fraction | None,
    ) -> av.VideoStream:
        opts = encoder_options(codec.name, options)
        for key, value in hdr_params(self.colour, codec.name).items():  # HDR10 metadata
            opts[key] = f"{opts[key]}:{value}" if opts.get(key) else value
        if (self.colour.mastering_display or self.colour.content_light) and not hdr_params(
            self.colour, codec.name
        ):
            log.warning("encoder %s cannot carry the source's HDR10 metadata (use hevc or "
                        "av1 to keep it)", codec.name)
        if self.colour.interlaced and codec.name in _INTERLACED_CODECS:
            opts.setdefault("flags", "+ildct+ilme")
            if codec.name == "libx264":
                order = "tff=1" if self.colour.field_order in _TOP_FIRST else "bff=1"
                params = opts.get("x264-params")
                opts["x264-params"] = f"{params}:{order}" if params else order
        stream = self.container.add_stream(codec.name, rate=frame_rate, options=opts)
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        cc = stream.codec_context
        cc.time_base = self.time_base
        cc.colorspace = self.colour.colorspace
        cc.color_range = self.colour.color_range
        cc.color_primaries = self.colour.color_primaries
        cc.color_trc = self.colour.color_trc
        if self.colour.field_order:  # interlaced sources stay interlaced, in their order
            cc.field_order = self.colour.field_order
        if self.colour.display_matrix is not None:  # orientation on display (rotation, flips)
            stream.set_display_matrix(list(self.colour.display_matrix))
        return stream

    def _add_copy(self, template: Any) -> Any:
        name = template.codec_context.name
        supported = self.container.supported_codecs
        if supported and name not in supported:
            raise MediaError(
                f"{template.type} codec {name!r} of input stream #{template.index} cannot be "
                f"stored in a {self.path.suffix} file; choose another container (e.g. .mkv)"
            )
        return self.container.add_stream_from_template(template)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one (H, W, 3) RGB uint8/uint16 frame at ``pts`` (in ``time_base``)."""
        frame = rgb_to_frame(rgb, self.pix_fmt, self.colour)
        frame.pts = pts
        frame.time_base = self.time_base
        packets = self.stream.encode(frame)
        self.frames += 1
        self._mux(packets)
        self.muxed += len(packets)

    def mux(self, packet: av.Packet) -> None:
        """Copy a demuxed packet of one of ``copy_streams``."""
        out = self._copies.get(packet.stream.index)
        if out is None or packet.dts is None and packet.pts is None:
            return
        packet.stream = out
        self._mux(packet)

    def _mux(self, packets: Any) -> None:
        try:
            self.container.mux(packets)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot write {self.path}: {exc}".splitlines()[0]) from None

    def close(self) -> None:
        """Flush the encoder, close the file and rename it into place."""
        try:
            self._mux(self.stream.encode(None))
            self.container.close()
        except BaseException:
            self.abort()
            raise
        if self.overwrite:
            os.replace(self.tmp_path, self.path)
        else:
            util.finish_noreplace(self.tmp_path, self.path)

    def close_partial(self) -> Path:
        """After a write error (disk full): keep what is in the file as a valid one.

        Flushes the encoder if the output still takes packets, else drops its delayed
        frames; writes the trailer and renames into place as :meth:`close` does (never
        replacing unless ``overwrite``). Returns the path of the finished file. If even the
        trailer cannot be written, the bytes are kept as ``NAME.rtderain-PID.ext`` and a
        :class:`MediaError` says so.
        """
        try:
            packets = self.stream.encode(None)
            self._mux(packets)
            self.muxed += len(packets)
        except (MediaError, OSError, av.FFmpegError) as exc:
            log.debug("%s: encoder flush after a write error failed: %s", self.path, exc)
        try:
            self.container.close()
        except (OSError, av.FFmpegError) as exc:
            kept = util.kept_name(self.path)
            util.rename_noreplace(self.tmp_path, kept)
            raise MediaError(
                f"cannot finish {self.path} ({exc}); the {self.muxed} frames written are "
                f"kept in {kept}, which may not play".splitlines()[0]
            ) from None
        if self.overwrite:
            os.replace(self.tmp_path, self.path)
        else:
            util.finish_noreplace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close without finishing and remove the temporary file."""
        try:
            self.container.close()
        except Exception as exc:  # already broken: nothing more to save
            log.debug("closing aborted output %s: %s", self.tmp_path, exc)
        self.tmp_path.unlink(missing_ok=True)
