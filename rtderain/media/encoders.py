"""Which encoder runs and with which FFmpeg options: :class:`EncodeOptions`,
:func:`check_encoder` (hardware encoders are opened once before any work and replaced by
the software encoder of the same format where this machine cannot run them) and
:func:`encoder_options` (``crf``/``preset`` in each encoder's own terms).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from rtderain.config import check_range
from rtderain.errors import MediaError

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
_PRESET_CODECS = {"libx264", "libx265"}
# Hardware encoders: FFmpeg lists them whether or not this machine has the hardware (an
# H100/H200/A100 has no NVENC), so they are opened once before any work (probe_encoder).
_HARDWARE = ("_nvenc", "_qsv", "_vaapi", "_amf", "_videotoolbox", "_v4l2m2m", "_mf")
_SOFTWARE_FOR = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
# x264/x265 preset names -> NVENC's p1 (fastest) .. p7 (best); p1-p7 pass through as given.
NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
    "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7",
}


@dataclass(frozen=True)
class EncodeOptions:
    """How the de-rained video is encoded.

    Attributes:
        codec: encoder name or alias (``h264`` -> libx264, ``hevc`` -> libx265, ``av1``,
            ``vp9``, ``ffv1``, ``h264_nvenc``, any encoder PyAV offers).
        crf: constant-rate factor for x264/x265/SVT-AV1/VP9 (lower = better, bigger); for
            NVENC the constant-quality target ``cq`` of its VBR mode (bitrate uncapped).
        preset: encoder speed preset (x264/x265 names; NVENC takes ``p1``-``p7`` or the
            x264 name mapped by :data:`NVENC_PRESETS`); None = encoder default.
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


def find_encoder(name: str) -> av.Codec | None:
    """FFmpeg's encoder ``name``, or None if this build has none of that name."""
    try:
        return av.Codec(name, "w")
    except Exception:  # PyAV raises several types for an unknown codec
        return None


def check_encoder(options: EncodeOptions) -> av.Codec:
    """The encoder that will run for ``options``; an unknown or non-video codec is a clear
    error. A hardware encoder (``h264_nvenc``, ...) is opened once first (:func:`probe_encoder`);
    if this machine cannot run it, the software encoder of the same format is returned
    (``libx264``, ``libx265``, ``libsvtav1``) and one warning line says so."""
    name = options.encoder
    if name.endswith(_HARDWARE):
        problem = probe_encoder(name)
        if problem is not None:
            fallback = _SOFTWARE_FOR.get(name.split("_")[0])
            if fallback is None:
                raise MediaError(f"encoder {name} cannot run here ({problem})")
            _warn_fallback(name, fallback, problem)
            name = fallback
    codec = find_encoder(name)
    if codec is None:
        raise MediaError(f"unknown video encoder {options.codec!r}")
    if codec.type != "video":
        raise MediaError(f"{options.codec!r} is not a video encoder")
    encoder_options(codec.name, options)  # a preset NVENC has no equivalent for: now
    return codec


@functools.cache
def probe_encoder(name: str) -> str | None:
    """Open encoder ``name`` on a small frame size: None if it opens, else why not.

    Cached per process: the hardware does not come and go during a run.
    """
    codec = find_encoder(name)
    if codec is None:
        return "not in this FFmpeg build"
    cc = av.CodecContext.create(name, "w")
    cc.width, cc.height = 256, 256
    formats = [f.name for f in (codec.video_formats or ())]
    cc.pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
    cc.time_base = Fraction(1, 25)
    try:
        _open(cc)
    except (av.FFmpegError, OSError, ValueError) as exc:  # what PyAV raises for a codec
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _open(cc: Any) -> None:
    """``cc.open()`` (a seam for tests that fake a GPU that fails)."""
    cc.open()


@functools.cache
def _warn_fallback(name: str, fallback: str, problem: str) -> None:
    log.warning("encoder %s cannot run here (%s): encoding with %s", name, problem, fallback)


def encoder_options(codec: str, options: EncodeOptions) -> dict[str, str]:
    """FFmpeg options for encoder ``codec`` from ``options`` (its ``options`` win).

    x264/x265/SVT-AV1/VP9 take ``crf`` and ``preset`` as such. NVENC has neither: ``crf``
    becomes VBR with constant quality ``cq`` and no bitrate cap (without it FFmpeg's
    2 Mbit/s default applies), and an x264 preset name is mapped to ``p1``-``p7``
    (:data:`NVENC_PRESETS`; NVENC's own legacy ``fast`` would be its lowest quality).
    """
    opts = dict(options.options)
    if codec.endswith("_nvenc"):
        if options.crf is not None:
            opts.setdefault("rc", "vbr")
            opts.setdefault("cq", str(options.crf))
            opts.setdefault("b", "0")
        if options.preset:
            preset = NVENC_PRESETS.get(options.preset, options.preset)
            if preset not in {f"p{i}" for i in range(1, 8)}:
                raise MediaError(f"preset {options.preset!r} has no NVENC equivalent "
                                 f"(use p1-p7 or one of {', '.join(NVENC_PRESETS)})")
            opts.setdefault("preset", preset)
            opts.setdefault("tune", "hq")
        return opts
    if options.crf is not None and codec in _CRF_CODECS:
        opts.setdefault("crf", str(options.crf))
        if codec == "libvpx-vp9":
            opts.setdefault("b", "0")
    if options.preset and codec in _PRESET_CODECS:
        opts.setdefault("preset", options.preset)
    return opts
