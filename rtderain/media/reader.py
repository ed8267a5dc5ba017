"""Video decoding with PyAV: the file source.

:class:`VideoReader` opens a file, finds its video stream and the streams to copy (audio,
subtitles by default; the file pipeline sets them from :mod:`rtderain.media.streams`), and
yields decoded frames in presentation order with their source ``pts``.
Packets that cannot be decoded are counted and skipped; everything that decodes is kept.
A truncated file (a cut-off last packet, a demuxing error, or a video that ends well before
the duration its header declares) is decoded to its last decodable frame and reported:
``truncated`` counts the frames missing, and one warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from rtderain.errors import MediaError
from rtderain.media.colour import ColourInfo, frame_to_rgb

log = logging.getLogger(__name__)

_AVFMT_NOTIMESTAMPS = 0x0080  # libavformat: the format stores no timestamps


PLANAR = ("yuv420p", "yuvj420p")  # the formats whose planes a luma network reads as they are


@dataclass
class DecodedFrame:
    """One decoded frame.

    Attributes:
        index: 0-based position in presentation order.
        pixels: in ``layout`` ``rgb``: (H, W, 3) RGB, uint8 (8-bit source) or uint16
            (deeper source); in ``layout`` ``i420``: the decoder's 8-bit 4:2:0 planes as
            they are, (3H/2, W) uint8 (Y, then U, then V; see :attr:`VideoReader.planes`).
        pts: presentation timestamp in the stream's ``time_base``.
        layout: ``rgb`` or ``i420``.
    """

    index: int
    pixels: np.ndarray
    pts: int
    layout: str = "rgb"

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the picture."""
        h, w = self.pixels.shape[:2]
        return (h * 2 // 3, w) if self.layout == "i420" else (h, w)


class VideoReader:
    """Decode the first video stream of ``path`` (threaded decoding in FFmpeg).

    Attributes after opening: ``width``, ``height``, ``time_base``, ``frame_rate``,
    ``frame_count`` (container's count or an estimate, 0 if unknown), ``copy_streams``,
    ``undecodable`` (packets that failed to decode so far), ``colour`` (after first frame),
    ``truncated`` (after :meth:`frames` ends: frames missing from a truncated file, at least
    1 when it is truncated, else 0).

    ``planes`` (set before :meth:`frames`): 8-bit 4:2:0 frames of even size come as their
    planes (layout ``i420``), every other frame as RGB: the YUV-native path of luma
    networks, which never converts to RGB and back (:func:`planar_source`).
    """

    planes = False

    def __init__(self, path: str | Path, copy: tuple[str, ...] = ("audio", "subtitle")) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(f"input not found: {self.path}")
        if self.path.is_dir():
            raise MediaError(f"{self.path} is a folder, not a video file")
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise MediaError(f"{self.path}: not a readable video ({_reason(exc)})") from None
        try:
            videos = self.container.streams.video
            if not videos:
                raise MediaError(f"{self.path}: has no video stream")
            self.stream = videos[0]
            self.stream.thread_type = "AUTO"
            cc = self.stream.codec_context
            if not cc.width or not cc.height:
                raise MediaError(f"{self.path}: video stream has no frame size (corrupt header?)")
            self.width, self.height = cc.width, cc.height
            self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
            # A format without timestamps (raw .h264/.hevc) has a placeholder average rate
            # (25); its frames are numbered at the rate the codec declares, as FFmpeg does.
            self.timestamps = not self.container.format.flags & _AVFMT_NOTIMESTAMPS
            rates = (self.stream.average_rate, self.stream.guessed_rate)
            if not self.timestamps:
                rates = rates[::-1]
            self.frame_rate: Fraction | None = rates[0] or rates[1]
            self.frame_count = self._count()
            self.copy_streams = tuple(
                s for s in self.container.streams if s.type in copy and s is not self.stream
            )
        except BaseException:
            self.container.close()
            raise
        self.undecodable = 0
        self.truncated = 0
        self._cut = False  # demuxing ended on an error or a cut-off packet
        self.fixed_pts = 0
        self.colour: ColourInfo | None = None

    def _count(self) -> int:
        if self.stream.frames:
            return int(self.stream.frames)
        duration = self.stream.duration
        if duration and self.frame_rate:
            return round(float(duration * self.time_base * self.frame_rate))
        if self.container.duration and self.frame_rate:
            return round(self.container.duration / av.time_base * float(self.frame_rate))
        return 0

    def frames(
        self, on_packet: Callable[[av.Packet], None] | None = None
    ) -> Iterator[DecodedFrame]:
        """Yield every decodable frame; hand copied-stream packets to ``on_packet``."""
        streams = [self.stream, *self.copy_streams] if on_packet else [self.stream]
        index = 0
        last_pts: int | None = None
        end: int | None = None  # the latest end (pts + duration) seen, in time_base
        step = self._pts_step()
        for packet in self._video_packets(streams, on_packet):
            for frame in self._decode(packet):
                pts = frame.pts
                if pts is not None:
                    stop = pts + (frame.duration or step)
                    end = stop if end is None else max(end, stop)
                if pts is None:
                    # Missing (every frame of a raw stream): one frame period after the last.
                    fixed = (last_pts + step) if last_pts is not None else 0
                    self._note_fixed(index, pts, fixed)
                    pts = fixed
                elif last_pts is not None and pts <= last_pts:
                    # A repeated or backwards pts: nudge this frame only, one tick past the
                    # last, so the frames after it keep their own timestamps.
                    fixed = last_pts + 1
                    self._note_fixed(index, pts, fixed)
                    pts = fixed
                if self.colour is None:
                    self.colour = ColourInfo.from_frame(
                        frame, int(self.stream.codec_context.field_order or 0)
                    )
                yield self._frame(index, frame, pts)
                last_pts = pts
                index += 1
        self._report_truncation(index, end, step)

    def _frame(self, index: int, frame: av.VideoFrame, pts: int) -> DecodedFrame:
        planes = i420_planes(frame) if self.planes else None
        if planes is not None:
            return DecodedFrame(index, planes, pts, "i420")
        assert self.colour is not None
        return DecodedFrame(index, frame_to_rgb(frame, self.colour), pts)

    def _video_packets(
        self, streams: list[Any], on_packet: Callable[[av.Packet], None] | None
    ) -> Iterator[av.Packet | None]:
        """The video stream's packets, then ``None`` (flush); copied streams' packets go to
        ``on_packet``. A packet the demuxer marks corrupt is held back one packet: if the
        file ends right after it, it is the cut-off end of a truncated file and is dropped
        (fed to a frame-threaded decoder, its error at the final flush would also lose
        the frames still in the decoder's threads)."""
        held: av.Packet | None = None
        for packet in self._demux(streams):
            if packet is None:
                break
            if packet.stream is not self.stream:
                on_packet(packet)  # type: ignore[misc]
                continue
            if not packet.size:  # the demuxer's own end-of-stream packet: flushed below
                continue
            if held is not None:
                yield held
                held = None
            if packet.is_corrupt:
                held = packet
                continue
            yield packet
        if held is not None:
            log.debug("%s: dropped the cut-off last packet (pts %s)", self.path, held.pts)
            self.undecodable += 1
            self._cut = True
        yield None

    def _report_truncation(self, decoded: int, end: int | None, step: int) -> None:
        """Set ``truncated`` and warn once if the file ends before its header says."""
        missing = 0
        declared = self._declared_end()
        if declared is not None and end is not None and self.frame_rate:
            gap = declared - float(end * self.time_base)
            frames = round(gap * float(self.frame_rate))
            if frames >= max(2, round(0.02 * decoded)):  # not rounding, not a short tail
                missing = frames
        if self.stream.frames and decoded < self.stream.frames and (self._cut or missing):
            missing = int(self.stream.frames) - decoded
        if self._cut or missing:
            self.truncated = max(missing, 1)
            log.warning(
                "%s is truncated: %d frames decoded, about %d missing at the end",
                self.path, decoded, self.truncated,
            )

    def _declared_end(self) -> float | None:
        """End time in seconds of the video stream, as the file's header declares it."""
        start = float((self.stream.start_time or 0) * self.time_base)
        if self.stream.duration:
            return start + float(self.stream.duration * self.time_base)
        tag = (self.stream.metadata or {}).get("DURATION")  # Matroska's per-track tag
        if tag:
            try:
                h, m, sec = tag.split(":")
                return start + int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                return None
        return None

    def _note_fixed(self, index: int, pts: int | None, fixed: int) -> None:
        """Log a repaired timestamp: a warning for the first, debug for the rest (a raw
        stream has no timestamps at all: one line, not one per frame)."""
        self.fixed_pts += 1
        if self.fixed_pts == 1:
            if pts is None and not self.timestamps:
                log.info("%s: no timestamps in a raw stream; frames numbered at %s fps",
                         self.path, self.frame_rate)
            else:
                log.warning("frame %d: pts %s missing or not increasing; using %d "
                            "(later ones are logged at debug level)", index, pts, fixed)
        else:
            log.debug("frame %d: pts %s missing or not increasing; using %d", index, pts, fixed)

    def _pts_step(self) -> int:
        if self.frame_rate:
            return max(1, round(1 / (self.frame_rate * self.time_base)))
        return 1

    def _demux(self, streams: list[Any]) -> Iterator[av.Packet | None]:
        """Demuxed packets, then ``None`` (flush the decoder of its delayed frames)."""
        it = self.container.demux(streams)
        while True:
            try:
                packet = next(it)
            except StopIteration:
                break
            except (av.FFmpegError, EOFError) as exc:
                log.warning("%s: demuxing stopped early: %s", self.path, _reason(exc))
                self.undecodable += 1
                self._cut = True
                break
            yield packet
        yield None

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return list(self.stream.decode(packet))
        except EOFError:  # decoder already flushed
            return []
        except av.FFmpegError as exc:
            self.undecodable += 1
            pts = packet.pts if packet is not None else "flush"
            log.debug("%s: undecodable packet (pts %s): %s", self.path, pts, _reason(exc))
            return []

    def close(self) -> None:
        self.container.close()


def i420_planes(frame: Any) -> np.ndarray | None:
    """An 8-bit 4:2:0 ``av.VideoFrame`` of even size as its planes, one I420 array
    (3H/2, W) uint8 (a copy); None for any other frame (another format, an odd size, or
    not a PyAV frame, e.g. an OpenCV BGR array)."""
    if (isinstance(frame, av.VideoFrame) and frame.format.name in PLANAR
            and not frame.width % 2 and not frame.height % 2):
        return frame.to_ndarray()
    return None


def planar_source(reader: VideoReader) -> bool:
    """Whether ``reader``'s video is 8-bit 4:2:0 (``yuv420p``/``yuvj420p``) of even size,
    as its decoder declares before the first frame: the YUV-native path can take it."""
    cc = reader.stream.codec_context
    fmt = getattr(cc, "format", None)
    name = fmt.name if fmt is not None else getattr(cc, "pix_fmt", None)
    return name in PLANAR and not reader.width % 2 and not reader.height % 2


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]
