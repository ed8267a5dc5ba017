"""Video encoding and muxing with PyAV: the file sink.

:class:`VideoWriter` writes under a temporary name beside the target and renames it into
place only in :meth:`VideoWriter.close`, after the encoder is flushed; :meth:`abort`
removes the temporary file. Frame timestamps are the caller's (source ``pts`` in the
source ``time_base``), never rebuilt from a frame rate. Audio and subtitle streams are
copied as packets from their input streams (``add_stream_from_template``).
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from rtderain import util
from rtderain.config import check_range
from rtderain.errors import MediaError
from rtderain.media.colour import ColourInfo, hdr_params, rgb_to_frame

log = logging.getLogger(__name__)

# Short names users type -> FFmpeg encoders.
CODEC_ALIASES = {
    "h264": "libx264",
    "x264": "libx264",
    "hevc": "libx265",
    "h265": "libx265",
    "x265": "libx265",
    "av1": "libsvtav1",
    "vp9": "libvpx-vp9",
}
_CRF_CODECS = {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "libaom-av1"}
_PRESET_CODECS = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc"}
# Encoders that code interlaced pictures as such (interlaced DCT and motion estimation).
_INTERLACED_CODECS = {"libx264", "mpeg2video", "mpeg4"}
_TOP_FIRST = {2, 5}  # AV_FIELD_TT, AV_FIELD_BT: the top field is displayed first
# Containers a refused stream is checked against, to say which would take it.
_SUGGESTED = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov"}
# Text subtitle codec each container takes, for the conversion the error suggests.
_TEXT_SUBTITLES = {".mkv": "srt", ".mp4": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}


@dataclass(frozen=True)
class EncodeOptions:
    """How the de-rained video is encoded.

    Attributes:
        codec: encoder name or alias (``h264`` -> libx264, ``hevc`` -> libx265, ``av1``,
            ``vp9``, ``ffv1``, ``h264_nvenc``, any encoder PyAV offers).
        crf: constant-rate factor for x264/x265/SVT-AV1/VP9 (lower = better, bigger).
        preset: encoder speed preset (x264/x265/NVENC names); None = encoder default.
        pix_fmt: output pixel format; None keeps the source's (4:4:4 for odd sizes with
            a chroma-subsampled source, since 4:2:0 needs even dimensions).
        options: extra encoder options passed to FFmpeg as strings.
    """

    codec: str = "h264"
    crf: int | None = 18
    preset: str | None = "fast"
    pix_fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_range("crf", self.crf, 0, 63, optional=True)

    @property
    def encoder(self) -> str:
        return CODEC_ALIASES.get(self.codec, self.codec)


def check_encoder(options: EncodeOptions) -> av.Codec:
    """The encoder for ``options``; an unknown or non-video codec is a clear error."""
    codec = _find_encoder(options.encoder)
    if codec is None:
        raise MediaError(f"unknown video encoder {options.codec!r}")
    if codec.type != "video":
        raise MediaError(f"{options.codec!r} is not a video encoder")
    return codec


# Encoders a refusal suggests, in this order, where this FFmpeg has them and the container
# takes them.
_SUGGESTED = ("h264", "hevc", "vp9", "av1", "ffv1")


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
        fits = [name for name in _SUGGESTED if _find_encoder(CODEC_ALIASES.get(name, name))
                and _container_takes(path, CODEC_ALIASES.get(name, name))]
        hint = f"use --codec {' or '.join(fits)}, or" if fits else "use"
        raise MediaError(
            f"{path}: a {path.suffix} file cannot hold {options.codec} video ({codec.name}); "
            f"{hint} another container (.mp4, .mkv)"
        )
    return codec


def _find_encoder(name: str) -> av.Codec | None:
    try:
        return av.Codec(name, "w")
    except Exception:  # PyAV raises several types for an unknown codec
        return None


def _container_takes(path: Path, encoder: str) -> bool | None:
    """Whether the muxer for ``path``'s extension accepts ``encoder`` (PyAV's own check in
    ``add_stream``, on an in-memory container); None: no muxer for that extension."""
    buf = io.BytesIO()
    buf.name = path.name
    try:
        container = av.open(buf, mode="w")
    except (av.FFmpegError, ValueError):
        return None
    try:
        container.add_stream(encoder)
    except ValueError:
        return False
    finally:
        container.close()
    return True


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
        codec = check_container(options, self.path)
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
        opts = dict(options.options)
        if options.crf is not None and codec.name in _CRF_CODECS:
            opts.setdefault("crf", str(options.crf))
            if codec.name == "libvpx-vp9":
                opts.setdefault("b", "0")
        if options.preset and codec.name in _PRESET_CODECS:
            opts.setdefault("preset", options.preset)
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
        # The muxer decides (avformat_query_codec); PyAV's supported_codecs misses every
        # codec of a muxer without a codec tag table (AAC in MPEG-TS).
        try:
            return self.container.add_stream_from_template(template)
        except ValueError:
            raise MediaError(refused_copy(template, self.path)) from None

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
        """Flush the encoder, close the file (the trailer: an mp4's index) and rename it
        into place. A write error on the way (disk full) removes the temporary file and is
        a :class:`MediaError`: nothing appears at ``path``."""
        try:
            self._mux(self.stream.encode(None))
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


def check_copies(templates: tuple[Any, ...], path: str | Path) -> None:
    """Raise :func:`refused_copy`'s error for the first of ``templates`` (input streams to
    copy) that the container of ``path`` (by its suffix) refuses; nothing is written."""
    buf = io.BytesIO()
    buf.name = Path(path).name
    try:
        out = av.open(buf, mode="w")
    except ValueError:  # no container for this suffix: VideoWriter's error says so
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
    others = [ext for ext, fmt in _SUGGESTED.items() if ext != suffix and _takes(fmt, template)]
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
