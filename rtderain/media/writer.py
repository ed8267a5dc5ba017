"""Video encoding and muxing with PyAV: the file sink.

:class:`VideoWriter` writes under a temporary name beside the target and renames it into
place only in :meth:`VideoWriter.close`, after the encoder is flushed; :meth:`abort`
removes the temporary file. Frame timestamps are the caller's (source ``pts`` in the
source ``time_base``), never rebuilt from a frame rate. Audio and subtitle streams are
copied as packets from their input streams (``add_stream_from_template``).

A frame size that changes mid-stream (concatenated TS, a camera changing mode) is written
at its own size where the format carries codec parameters in band (MPEG-TS with H.264,
HEVC or MPEG-2: the encoder is restarted at the new size); elsewhere the frame is scaled
to the output's size, with one warning for the file.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from rtderain import util
from rtderain.errors import MediaError
from rtderain.media.colour import (
    ColourInfo,
    frame_to_rgb,
    hdr_params,
    planes_to_frame,
    rgb_to_frame,
)
from rtderain.media.containers import (  # noqa: F401  (check_copies re-exported)
    _container_takes,
    check_copies,
    refused_copy,
    remove_stale_partials,
)
from rtderain.media.encoders import (  # noqa: F401  (re-exported: the writer's options)
    CODEC_ALIASES,
    EncodeOptions,
    check_encoder,
    encoder_options,
    find_encoder,
)

log = logging.getLogger(__name__)

# Encoders that code interlaced pictures as such (interlaced DCT and motion estimation).
_INTERLACED_CODECS = {"libx264", "mpeg2video", "mpeg4"}
_TOP_FIRST = {2, 5}  # AV_FIELD_TT, AV_FIELD_BT: the top field is displayed first
# Encoders whose parameter sets travel in band in MPEG-TS: a new size is a new sequence.
_INBAND_CODECS = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "mpeg2video", "mpeg1video"}


# Encoders a refusal suggests, in this order, where this FFmpeg has them and the container
# takes them.
_SUGGESTED_ENCODERS = ("h264", "hevc", "vp9", "av1", "ffv1")


def check_container(options: EncodeOptions, path: str | Path) -> av.Codec:
    """:func:`check_encoder`, and that the container of ``path`` (from its extension) can
    hold that encoder's video (libx264 cannot go in ``.webm``): else a :class:`MediaError`
    naming the encoders that fit. Writes nothing; run it before any work."""
    codec = check_encoder(options)
    path = Path(path)
    takes = _container_takes(path, codec.name)
    if takes is None:
        raise MediaError(f"{path}: no container format for the extension {path.suffix!r} "
                         "(use .mp4, .mkv, .mov, .webm, ...)")
    if not takes:
        fits = [name for name in _SUGGESTED_ENCODERS if find_encoder(CODEC_ALIASES.get(name, name))
                and _container_takes(path, CODEC_ALIASES.get(name, name))]
        hint = f"use --codec {' or '.join(fits)}, or" if fits else "use"
        raise MediaError(
            f"{path}: a {path.suffix} file cannot hold {options.codec} video ({codec.name}); "
            f"{hint} another container (.mp4, .mkv)"
        )
    return codec


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


class VideoWriter:
    """Encode RGB frames (plus copied packet streams) into ``path``.

    Args:
        path: final output path; the container format comes from its suffix.
        width, height: frame size (odd sizes kept).
        time_base: time base of the ``pts`` passed to :meth:`write` (the source's).
        frame_rate: nominal rate for the encoder's rate control (never used for timestamps).
        colour: source colour description (matrix, range, tags, bit depth).
        options: encoder settings.
        copy_streams: input streams (audio, subtitles, extra video) whose packets
            :meth:`mux` copies.
        attachments: input attachment streams (fonts of ASS subtitles) embedded again
            (Matroska only).
        timecode: the source's start timecode (``HH:MM:SS:FF``), written as the video's
            timecode (a ``tmcd`` track in .mov/.mp4).
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
        attachments: tuple[Any, ...] = (),
        timecode: str | None = None,
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
        self.width, self.height = width, height
        self.codec = codec = check_container(options, self.path)
        self.options = options
        self.frame_rate = frame_rate
        self.pix_fmt = choose_pix_fmt(codec, options, colour, width, height)
        try:
            self.container = av.open(str(self.tmp_path), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MediaError(f"cannot write {self.path}: {exc}".splitlines()[0]) from None
        try:
            self.stream = self._add_video(codec, options, width, height, frame_rate)
            if timecode:
                self.stream.metadata["timecode"] = timecode
            self._copies = {s.index: self._add_copy(s) for s in copy_streams}
            for att in attachments:
                self.container.add_attachment(att.name, att.mimetype, bytes(att.data))
        except BaseException:
            self.abort()
            raise
        # The encoder now running: the stream's, or one restarted at a new frame size.
        self._encoder: Any = self.stream.codec_context
        self._size = (width, height)
        self._inband = (self.container.format.name == "mpegts"
                        and codec.name in _INBAND_CODECS)
        self._scaled_from: tuple[int, int] | None = None  # first size scaled to the output's

    def _add_video(
        self,
        codec: av.Codec,
        options: EncodeOptions,
        width: int,
        height: int,
        frame_rate: Fraction | None,
    ) -> av.VideoStream:
        opts = self._encoder_options(codec, options)
        stream = self.container.add_stream(codec.name, rate=frame_rate, options=opts)
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        self._configure(stream.codec_context)
        if self.colour.display_matrix is not None:  # orientation on display (rotation, flips)
            stream.set_display_matrix(list(self.colour.display_matrix))
        return stream

    def _encoder_options(self, codec: av.Codec, options: EncodeOptions) -> dict[str, str]:
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
        return opts

    def _configure(self, cc: Any) -> None:
        """Time base, colour tags and field order of an encoder (the stream's or a new one)."""
        cc.time_base = self.time_base
        cc.colorspace = self.colour.colorspace
        cc.color_range = self.colour.color_range
        cc.color_primaries = self.colour.color_primaries
        cc.color_trc = self.colour.color_trc
        if self.colour.field_order:  # interlaced sources stay interlaced, in their order
            cc.field_order = self.colour.field_order

    def _add_copy(self, template: Any) -> Any:
        # The muxer decides (avformat_query_codec); PyAV's supported_codecs misses every
        # codec of a muxer without a codec tag table (AAC in MPEG-TS).
        try:
            out = self.container.add_stream_from_template(template)
        except ValueError:
            raise MediaError(refused_copy(template, self.path)) from None
        if template.type == "video":  # e.g. a cover picture stays one
            out.disposition = template.disposition
        return out

    def write(self, pixels: np.ndarray, pts: int, layout: str = "rgb") -> None:
        """Encode one frame at ``pts`` (in ``time_base``): (H, W, 3) RGB uint8/uint16, or
        (``layout`` ``i420``) 8-bit 4:2:0 planes (3H/2, W) in the source's own matrix and
        range, encoded as they are where the output is ``yuv420p`` (no conversion).

        A frame of another size than the encoder's restarts the encoder at that size
        (MPEG-TS with an in-band codec) or is scaled to the output's size (one warning)."""
        if layout == "i420":
            frame = planes_to_frame(pixels, self.colour)
            if frame.width != self._size[0] or frame.height != self._size[1] or (
                self.pix_fmt != "yuv420p"
            ):
                pixels, layout = frame_to_rgb(frame, self.colour), "rgb"
        if layout == "rgb":
            h, w = pixels.shape[:2]
            if (w, h) != self._size:
                pixels = self._new_size(pixels, pts)
            frame = rgb_to_frame(pixels, self.pix_fmt, self.colour)
        frame.pts = pts
        frame.time_base = self.time_base
        self.frames += 1
        self._flush_packets(self._encoder.encode(frame))

    def _flush_packets(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            packet.stream = self.stream
        self._mux(packets)
        self.muxed += len(packets)

    def _new_size(self, rgb: np.ndarray, pts: int) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self._inband:
            log.info("%s: frame size %dx%d -> %dx%d at pts %d: encoder restarted at the new "
                     "size", self.path, *self._size, w, h, pts)
            self._flush_packets(self._encoder.encode(None))
            self.pix_fmt = choose_pix_fmt(self.codec, self.options, self.colour, w, h)
            cc = av.CodecContext.create(self.codec.name, "w")
            cc.width, cc.height, cc.pix_fmt = w, h, self.pix_fmt
            if self.frame_rate:
                cc.framerate = self.frame_rate
            cc.options = self._encoder_options(self.codec, self.options)
            self._configure(cc)
            self._encoder, self._size = cc, (w, h)
            return rgb
        if self._scaled_from is None:
            self._scaled_from = (w, h)
            log.warning(
                "%s: the frame size changes from %dx%d to %dx%d at pts %d; a %s file keeps "
                "one size, so such frames are scaled to %dx%d (an .ts output keeps every "
                "size)", self.path, self.width, self.height, w, h, pts,
                self.path.suffix or self.container.format.name, self.width, self.height,
            )
        shrink = w * h > self.width * self.height
        return cv2.resize(rgb, (self.width, self.height),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

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
        """Flush the encoder, close the file (the trailer: an mp4's index) and rename it
        into place. A write error on the way (disk full) removes the temporary file and is
        a :class:`MediaError`: nothing appears at ``path``."""
        try:
            self._flush_packets(self._encoder.encode(None))
            self.container.close()
        except (OSError, av.FFmpegError) as exc:
            self.abort()
            raise MediaError(f"cannot finish {self.path}: {exc}".splitlines()[0]) from None
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
            self._flush_packets(self._encoder.encode(None))
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
