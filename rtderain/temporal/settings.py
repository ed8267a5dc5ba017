"""Settings of the temporal stage (one frozen dataclass; thresholds on the 8-bit scale)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rtderain.errors import ConfigError

MODES = ("off", "window", "causal")

# What a field left at None means, per mode (docs/temporal.md, "Session 11" and "Session
# 12"): files get the precise half-resolution flow with a loose, guarded trust and the still
# rule over 9 frames with its agreement test; causal (live) gets the still rule alone.
MODE_DEFAULTS: dict[str, dict[str, object]] = {
    "window": {"radius": 4, "flow_radius": 2, "flow_scale": 2, "flow_preset": "medium",
               "fb_tol": 8.0, "photo_tol": 40.0, "grad_weight": 0.25, "fill_spread": 20.0,
               "still_centre": "ends", "still_agree": True},
    # Live (session 12): the still rule alone over 4 past frames, with the centre check
    # (no future frame guards a camera that starts or stops moving); the flow rule off,
    # its quarter-resolution flow kept for scene cuts: ~4x cheaper, and better on a still
    # camera than the session-10 flow setting (docs/temporal.md, "Session 12").
    "causal": {"radius": 4, "flow_radius": 0, "flow_scale": 4, "flow_preset": "ultrafast",
               "fb_tol": 4.0, "photo_tol": 20.0, "grad_weight": 1.0, "fill_spread": 0.0,
               "still_centre": "always", "still_agree": False},
}
MODE_DEFAULTS["off"] = MODE_DEFAULTS["window"]
PRESET_NAMES = ("ultrafast", "fast", "medium")
CENTRE_CHECKS = ("always", "ends", "off")


@dataclass(frozen=True)
class TemporalSettings:
    """How the temporal stage aligns and fuses per-frame de-rained frames.

    Every intensity threshold is in levels of the 8-bit scale (0-255) and is scaled by
    ``65535 / 255`` for uint16 frames. See ``docs/temporal.md`` for the method and the
    measurements behind the defaults.

    Fields left at None take their mode's default (:data:`MODE_DEFAULTS`, applied by
    :meth:`resolved`; the stage resolves its settings): ``window`` aligns at half
    resolution with DIS ``medium`` (precise enough for a low gradient margin and a loose
    trust, guarded by ``fill_spread``) and runs the still rule over ``radius`` 4;
    ``causal`` (live) runs the still rule alone over 4 past frames with ``still_centre``
    and keeps only the quarter-resolution ``ultrafast`` flow that detects scene cuts
    (``flow_radius`` 0), which fits a live frame budget. ``flow_radius`` bounds the DIS
    flows per frame (2 ``flow_radius``) and the warps. Raise ``rain_lo`` or ``grad_weight`` if
    textured regions lose detail, lower ``fill_spread`` or ``photo_tol`` if moving edges
    ghost.

    Attributes:
        mode: ``"window"`` (centred window, ``radius`` frames of look-ahead), ``"causal"``
            (past frames only, no latency) or ``"off"`` (passthrough).
        radius: neighbours on each side (window) or in the past (causal), >= 1: the
            still-camera rule takes the minimum over all of them.
        flow_radius: the flow rule aligns the nearest ``flow_radius`` of them on each side
            (2 ``flow_radius`` DIS flows per frame; farther ones align worse); 0: no flow
            rule (one flow pair per frame still detects scene cuts).
        flow_scale: flow is computed on frames downscaled by this integer factor.
        fb_tol: forward-backward flow inconsistency (full-resolution pixels) above which an
            aligned neighbour pixel is not trusted.
        photo_tol: absolute luma difference (at flow resolution, after a 3x3 erosion that
            removes thin rain) between the centre and an aligned neighbour, beyond
            ``photo_grad`` x the local gradient there, above which that neighbour pixel is
            not trusted (textured areas align worse at the flow scale).
        rain_lo, rain_hi: rain evidence ramp: a pixel whose rainy luma exceeds every trusted
            aligned rainy neighbour by more than ``rain_lo`` + ``grad_weight`` x its local
            gradient starts to be replaced; from ``rain_hi`` above, fully.
        grad_weight: how much the local 5x5 gradient of the de-rained centre raises the
            margin (alignment errors concentrate on edges), scaled per pixel by the local
            flow magnitude relative to ``motion_ref`` (capped at 1): a static camera gets
            the plain ``rain_lo`` margin.
        motion_ref: flow magnitude (full-resolution pixels) at which the gradient margin
            is fully on.
        min_neighbours: pixels with fewer trusted neighbours keep the per-frame result.
        streak_width: rain is thin: detected regions at least this many pixels wide (a
            square of that side fits inside) are taken for moving objects or occlusions and
            keep the per-frame result.
        fill_spread: a detected pixel keeps the per-frame result where its trusted
            neighbours' de-rained lumas spread over more than this many levels (they do not
            show one background: a moving edge, an occlusion); 0 = off.
        flow_preset: OpenCV DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``.
        both_sides: window mode: a pixel counts as rain only if trusted neighbours in the
            past *and* in the future both say it is (an occlusion or a moving object covers
            a pixel on one side of the centre only; rain is independent per frame).
            Centres with neighbours on one side only (clip ends) use those.
        still_shift: still-camera rule (``still.py``): the neighbours are split into two
            groups (past / future) and the per-pixel minimum rainy luma of each is taken;
            when those two agree on a global shift of at most this many pixels (phase
            correlation), the camera is still and each pixel where the two minima agree
            (static background) takes the per-channel minimum of all the rainy frames;
            0 disables the rule.
        still_centre: still rule: when the centre's rainy luma must also lie within
            ``still_shift`` of the nearest group's minimum: ``always`` (causal default),
            ``ends`` (window default: where one side of the window has more than one
            frame more than the other, at a segment's start and end) or ``off``. A
            camera that starts or stops moving fools the two groups alone when both lie
            on one side of the centre.
        still_agree: still rule: where the two group minima differ by more than
            ``still_tol`` but the de-rained centre matches the darker one within it, the
            difference was rain in one group, not motion: the pixel counts as static
            (window default; in causal mode it let moving cars ghost).
        still_tol: still rule: largest difference of the two group minima (8-bit levels)
            at a static-background pixel.
        still_blob: still rule: disagreeing specks thinner than this square are ignored
            (rain falling on one pixel in every frame of a group); 1 = off.
        still_guard: still rule: disagreement is dilated by a square of this side
            (distrusts the edges of moving objects).
        cut_fraction: a new frame whose alignment to the previous one fails on more than
            this share of pixels is a scene cut (the window is reset).
    """

    mode: str = "window"
    radius: int | None = None
    flow_radius: int | None = None
    flow_scale: int | None = None
    fb_tol: float | None = None
    photo_tol: float | None = None
    photo_grad: float = 0.0
    rain_lo: float = 2.0
    rain_hi: float = 4.0
    grad_weight: float | None = None
    motion_ref: float = 1.0
    min_neighbours: int = 2
    streak_width: int = 5
    fill_spread: float | None = None
    flow_preset: str | None = None
    both_sides: bool = True
    still_shift: float = 0.2
    still_centre: str | None = None
    still_agree: bool | None = None
    still_tol: float = 10.0
    still_blob: int = 3
    still_guard: int = 15
    cut_fraction: float = 0.6

    def resolved(self) -> TemporalSettings:
        """These settings with every field left at None set to its mode's default
        (:data:`MODE_DEFAULTS`)."""
        unset = {k: v for k, v in MODE_DEFAULTS[self.mode].items() if getattr(self, k) is None}
        return replace(self, **unset) if unset else self

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"temporal mode {self.mode!r} unknown; use one of {MODES}")
        if self.radius is not None and self.radius < 1:
            raise ConfigError(f"temporal radius must be >= 1, got {self.radius}")
        if self.flow_radius is not None and self.flow_radius < 0:
            raise ConfigError(f"temporal flow_radius must be >= 0, got {self.flow_radius}")
        if self.flow_scale is not None and self.flow_scale < 1:
            raise ConfigError(f"temporal flow_scale must be >= 1, got {self.flow_scale}")
        if not 0 <= self.rain_lo < self.rain_hi:
            raise ConfigError(
                f"temporal rain_lo/rain_hi must satisfy 0 <= lo < hi, got "
                f"{self.rain_lo}, {self.rain_hi}"
            )
        if self.grad_weight is not None and self.grad_weight < 0:
            raise ConfigError(f"temporal grad_weight must be >= 0, got {self.grad_weight}")
        if self.motion_ref <= 0:
            raise ConfigError(f"temporal motion_ref must be > 0, got {self.motion_ref}")
        if self.min_neighbours < 1:
            raise ConfigError(f"temporal min_neighbours must be >= 1, got {self.min_neighbours}")
        if self.fill_spread is not None and self.fill_spread < 0:
            raise ConfigError(f"temporal fill_spread must be >= 0, got {self.fill_spread}")
        if self.streak_width < 2:
            raise ConfigError(f"temporal streak_width must be >= 2, got {self.streak_width}")
        if self.flow_preset is not None and self.flow_preset not in PRESET_NAMES:
            raise ConfigError(
                f"temporal flow_preset {self.flow_preset!r} unknown; use one of {PRESET_NAMES}"
            )
        if self.still_centre is not None and self.still_centre not in CENTRE_CHECKS:
            raise ConfigError(
                f"temporal still_centre {self.still_centre!r} unknown; use one of "
                f"{CENTRE_CHECKS}"
            )
        if self.still_shift < 0 or self.still_tol < 0:
            raise ConfigError(
                f"temporal still_shift/still_tol must be >= 0, got {self.still_shift}, "
                f"{self.still_tol}"
            )
        if self.still_blob < 1 or self.still_guard < 1:
            raise ConfigError(
                f"temporal still_blob/still_guard must be >= 1, got {self.still_blob}, "
                f"{self.still_guard}"
            )
        if not 0 < self.cut_fraction <= 1:
            raise ConfigError(f"temporal cut_fraction must be in (0, 1], got {self.cut_fraction}")
