"""Colour matrix, range and bit depth: read them from the source, keep them on the output.

Decoding converts YUV to RGB with the *source's* matrix and range; encoding converts back
with the same matrix and range and copies the tags (matrix, range, primaries, transfer),
so a flat colour survives the round trip within rounding (tested for BT.601 and BT.709,
limited and full range). An untagged source is converted as BT.601 both ways (swscale's
default) and stays untagged.

What else describes the picture travels with it, read from the first decoded frame: the
display matrix (a phone's portrait video is stored landscape and rotated on display) is
written on the output stream; HDR10 static metadata (mastering display, content light
level) is given to the encoders that take it (x265, SVT-AV1); an interlaced source keeps
its field order (and is encoded interlaced by the encoders that can, x264 and MPEG-2/4).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

# swscale flags for both conversions: accurate rounding and full-resolution chroma in and
# out. Without them an identity round trip through 4:2:0 darkens luma by about one level
# per pass (-1.07 mean for BT.601 limited); with them it is exact within rounding.
_SWS_FLAGS = (
    Interpolation.BILINEAR
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)

# AVColorSpace (frame/codec tag) -> swscale matrix.
_SWS_MATRIX = {
    1: Colorspace.ITU709,  # BT709
    4: Colorspace.FCC,
    5: Colorspace.ITU601,  # BT470BG
    6: Colorspace.SMPTE170M,  # BT.601 525
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,  # BT2020_NCL
    10: Colorspace.BT2020,  # BT2020_CL (approximated by NCL)
}
_MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 5: "bt601", 6: "bt601", 9: "bt2020"}


@dataclass(frozen=True)
class ColourInfo:
    """Colour description of a video stream.

    Attributes:
        colorspace: AVColorSpace tag (1 BT.709, 5/6 BT.601, 9 BT.2020, 2 unspecified).
        color_range: AVColorRange tag (1 limited/MPEG, 2 full/JPEG, 0 unspecified).
        color_primaries: AVColorPrimaries tag (copied).
        color_trc: AVColorTransferCharacteristic tag (copied).
        pix_fmt: the source pixel format (e.g. ``yuv420p``, ``yuv420p10le``).
        bit_depth: bits per component of the source (8, 10, 12, 16).
        display_matrix: the source's display matrix (9 int32, FFmpeg's
            ``AV_FRAME_DATA_DISPLAYMATRIX`` layout: rotation and flips on display), None
            when it has none; copied to the output stream.
        field_order: AVFieldOrder (0 unknown, 1 progressive, 2 TT, 3 BB, 4 TB, 5 BT).
        mastering_display: HDR10 mastering display (22 int32, FFmpeg's
            ``AVMasteringDisplayMetadata``: R, G, B and white point x/y, min and max
            luminance as rationals, then has_primaries, has_luminance), or None.
        content_light: HDR10 (MaxCLL, MaxFALL) in cd/m2, or None.
    """

    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    pix_fmt: str = "yuv420p"
    bit_depth: int = 8
    display_matrix: tuple[int, ...] | None = None
    field_order: int = 0
    mastering_display: tuple[int, ...] | None = None
    content_light: tuple[int, ...] | None = None

    @property
    def interlaced(self) -> bool:
        return self.field_order > 1

    @classmethod
    def from_frame(cls, frame: av.VideoFrame, field_order: int = 0) -> ColourInfo:
        """The first decoded frame's description; ``field_order``: the stream's
        (``codec_context.field_order``), trusted unless the frame says it is interlaced
        and the stream does not (then top field first, the usual order)."""
        fmt = frame.format
        depth = max((c.bits for c in fmt.components), default=8)
        rng = int(frame.color_range)
        if rng == 0 and fmt.name.startswith("yuvj"):
            rng = 2
        return cls(
            colorspace=int(frame.colorspace),
            color_range=rng,
            color_primaries=int(frame.color_primaries),
            color_trc=int(frame.color_trc),
            pix_fmt=fmt.name,
            bit_depth=depth,
            display_matrix=_display_matrix(frame),
            field_order=2 if frame.interlaced_frame and field_order in (0, 1) else field_order,
            mastering_display=_side_data(frame, "MASTERING_DISPLAY_METADATA", 88),
            content_light=_side_data(frame, "CONTENT_LIGHT_LEVEL", 8),
        )

    @property
    def sws_matrix(self) -> Colorspace:
        return _SWS_MATRIX.get(self.colorspace, Colorspace.ITU601)

    @property
    def sws_range(self) -> ColorRange:
        return ColorRange.JPEG if self.color_range == 2 else ColorRange.MPEG

    @property
    def rgb_format(self) -> str:
        """Intermediate RGB format: ``rgb24`` for 8-bit sources, ``rgb48le`` for deeper ones."""
        return "rgb24" if self.bit_depth <= 8 else "rgb48le"

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bit_depth <= 8 else np.uint16

    def describe(self) -> str:
        matrix = _MATRIX_NAMES.get(self.colorspace, f"matrix {self.colorspace}")
        rng = {1: "limited", 2: "full"}.get(self.color_range, "unspecified range")
        return f"{self.pix_fmt}, {matrix}, {rng}, {self.bit_depth}-bit"


def _side_data(frame: av.VideoFrame, kind: str, size: int) -> tuple[int, ...] | None:
    """The frame's side data of type ``kind`` as int32 values, if it has ``size`` bytes."""
    want = getattr(av.sidedata.sidedata.Type, kind, None)
    for data in frame.side_data.keys():
        if want is not None and data.type == want and data.buffer_size == size:
            return tuple(int(v) for v in np.frombuffer(bytes(memoryview(data)), "<i4"))
    return None


def hdr_params(colour: ColourInfo, encoder: str) -> dict[str, str]:
    """Encoder options that carry the source's HDR10 static metadata: ``x265-params`` for
    libx265, ``svtav1-params`` for libsvtav1; empty for others or without metadata."""
    md, cll = colour.mastering_display, colour.content_light
    parts: list[str] = []
    if md is not None and md[20] and md[21]:  # has_primaries, has_luminance
        r = [md[i] / md[i + 1] if md[i + 1] else 0.0 for i in range(0, 20, 2)]
        lum_min = md[16] / md[17] if md[17] else 0.0
        lum_max = md[18] / md[19] if md[19] else 0.0
        (rx, ry, gx, gy, bx, by, wx, wy) = r[:8]
        if encoder == "libx265":  # chromaticity in 1/50000, luminance in 1/10000 cd/m2
            c = [round(v * 50000) for v in (gx, gy, bx, by, rx, ry, wx, wy)]
            parts.append(
                f"master-display=G({c[0]},{c[1]})B({c[2]},{c[3]})R({c[4]},{c[5]})"
                f"WP({c[6]},{c[7]})L({round(lum_max * 10000)},{round(lum_min * 10000)})"
            )
        elif encoder == "libsvtav1":
            parts.append(
                f"mastering-display=G({gx:.4f},{gy:.4f})B({bx:.4f},{by:.4f})"
                f"R({rx:.4f},{ry:.4f})WP({wx:.4f},{wy:.4f})L({lum_max:.4f},{lum_min:.4f})"
            )
    if cll is not None:
        if encoder == "libx265":
            parts.append(f"max-cll={cll[0]},{cll[1]}")
        elif encoder == "libsvtav1":
            parts.append(f"content-light={cll[0]},{cll[1]}")
    if not parts:
        return {}
    if encoder == "libx265":
        return {"x265-params": ":".join([*parts, "hdr10=1"])}
    return {"svtav1-params": ":".join(parts)}


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix side data as 9 int32, or None (none, or the identity)."""
    for data in frame.side_data.keys():
        if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and data.buffer_size == 36:
            matrix = tuple(int(v) for v in np.frombuffer(bytes(memoryview(data)), "<i4"))
            return None if matrix == _IDENTITY else matrix
    return None


_IDENTITY = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)


def frame_to_rgb(frame: av.VideoFrame, colour: ColourInfo) -> np.ndarray:
    """Decoded frame -> (H, W, 3) RGB uint8/uint16 with the source's matrix and range."""
    if frame.format.name in ("rgb24", "rgb48le"):
        return frame.to_ndarray()
    return frame.reformat(
        format=colour.rgb_format,
        src_colorspace=colour.sws_matrix,
        src_color_range=colour.sws_range,
        dst_color_range=ColorRange.JPEG,
        interpolation=_SWS_FLAGS,
    ).to_ndarray()


def _tag(frame: av.VideoFrame, colour: ColourInfo) -> av.VideoFrame:
    frame.colorspace = colour.colorspace
    frame.color_range = colour.color_range
    frame.color_primaries = colour.color_primaries
    frame.color_trc = colour.color_trc
    return frame


def planes_to_frame(planes: np.ndarray, colour: ColourInfo) -> av.VideoFrame:
    """(3H/2, W) uint8 I420 planes in the source's matrix and range -> a ``yuv420p``
    frame with the source's tags (the planes are copied, not converted)."""
    return _tag(av.VideoFrame.from_ndarray(planes, format="yuv420p"), colour)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: ColourInfo) -> av.VideoFrame:
    """(H, W, 3) RGB uint8/uint16 -> a ``pix_fmt`` frame with the source's matrix, range, tags."""
    src = av.VideoFrame.from_ndarray(rgb, format="rgb24" if rgb.dtype == np.uint8 else "rgb48le")
    if pix_fmt in ("rgb24", "rgb48le", "gbrp", "bgr24") and pix_fmt == src.format.name:
        frame = src
    else:
        frame = src.reformat(
            format=pix_fmt,
            dst_colorspace=colour.sws_matrix,
            src_color_range=ColorRange.JPEG,
            dst_color_range=colour.sws_range,
            interpolation=_SWS_FLAGS,
        )
    return _tag(frame, colour)
