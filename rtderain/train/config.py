"""Training configuration: one YAML per experiment (``configs/train_*.yaml``).

Unknown keys are errors; ``--set section.key=value`` overrides apply before parsing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtderain.config import apply_overrides, check_range, from_dict, load_yaml
from rtderain.errors import ConfigError
from rtderain.train.losses import LossWeights


@dataclass(frozen=True)
class DataConfig:
    """Training clips and sampling.

    Attributes:
        roots: folders of clips (``rtderain synth`` output), clip folders or videos.
        crop: square crop side in pixels (a multiple of the model's pad multiple).
        batch: pairs per step (per process under DDP).
        frames_per_clip: at most this many frames of each clip are used (paper: T = 30).
        pseudo_gt: ``median``/``mean``/``quantile``/``adaptive`` temporal pseudo ground
            truth, or null. ``adaptive``: the median for light rain, sliding per clip to the
            temporal minimum (rain only brightens) as the clip's rain lifts the median.
        quantile: the quantile for ``pseudo_gt: quantile``.
        adaptive_levels: ``pseudo_gt: adaptive``: the clip's typical (median over pixels)
            gap between temporal median and minimum, in Y levels of 255, at which the
            target starts to slide from the median and at which it is the minimum.
        cache: keep decoded clips (and their pseudo ground truth) in memory.
        cache_frames_max_gb: with ``cache``, stop caching decoded frames once they take
            this many GB (null = no limit; 0 = cache only the pseudo ground truth); the
            frames of a clip not cached are read from disk, only the two a sample uses.
        root_weights: optional integer sampling weight per root (a root of weight w is
            listed w times in the index); empty = all 1.
        augment_flip: mirror each sample left-right with probability 1/2.
        augment_rotate_deg: rotate each sample by an angle uniform in +-this many degrees
            (0 = off). Flip and rotation are the same for both frames of a pair and its
            pseudo ground truth; both off by default.
        teacher_rotate_deg: rotate each sample by an angle uniform in +-this many degrees
            *after* the teacher (``loss.teacher``) has seen it upright; the teacher's
            background is rotated with it (:mod:`rtderain.train.teacher`: the student
            learns rain at angles the teacher handles upright). Crops of ``crop`` are cut
            from larger loaded ones. 0 = off.
    """

    roots: tuple[str, ...] = ()
    crop: int = 128
    batch: int = 4
    frames_per_clip: int = 30
    pseudo_gt: str | None = None
    quantile: float = 0.5
    adaptive_levels: tuple[float, float] = (8.0, 16.0)
    cache: bool = True
    cache_frames_max_gb: float | None = None
    root_weights: tuple[int, ...] = ()
    augment_flip: bool = False
    augment_rotate_deg: float = 0.0
    teacher_rotate_deg: float = 0.0

    def __post_init__(self) -> None:
        check_range("crop", self.crop, 1, 4096)
        check_range("batch", self.batch, 1, 1024)
        check_range("frames_per_clip", self.frames_per_clip, 2, 100_000)  # pairs need 2
        check_range("quantile", self.quantile, 0.0, 1.0)
        check_range("cache_frames_max_gb", self.cache_frames_max_gb, 0.0, optional=True)
        check_range("augment_rotate_deg", self.augment_rotate_deg, 0.0, 90.0)
        check_range("teacher_rotate_deg", self.teacher_rotate_deg, 0.0, 90.0)
        for weight in self.root_weights:
            check_range("root_weights[]", weight, 0)
        if self.root_weights and not any(self.root_weights):
            raise ConfigError(f"root_weights={list(self.root_weights)}: all are 0")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with cosine annealing from ``lr`` to ``min_lr`` after ``warmup`` linear steps.

    The cosine progress is ``step / steps``, or, when ``time_budget_min`` is set, the larger
    of that and training-time / budget, so a time-limited run still anneals to the end.

    ``ema`` > 0 keeps an exponential moving average of the weights with that decay (per
    step, ramped up as ``min(ema, (1 + step) / (10 + step))``); validation, ``best.pt`` and
    ``final.pt`` then hold the averaged network. The memory items are not averaged (they
    are unit-length prototypes): the average carries the live model's items.
    """

    lr: float = 2e-4
    min_lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup: int = 0
    steps: int = 1000
    time_budget_min: float | None = None
    grad_clip: float | None = 1.0
    ema: float = 0.0

    def __post_init__(self) -> None:
        check_range("lr", self.lr, 1e-12, 10.0)
        check_range("min_lr", self.min_lr, 0.0, self.lr)
        for beta in self.betas:
            check_range("betas[]", beta, 0.0, 0.999999)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("warmup", self.warmup, 0)
        check_range("steps", self.steps, 1)
        check_range("time_budget_min", self.time_budget_min, 1e-6, optional=True)
        check_range("grad_clip", self.grad_clip, 1e-12, optional=True)
        check_range("ema", self.ema, 0.0, 0.999999)


@dataclass(frozen=True)
class ValConfig:
    """Periodic validation (Y-PSNR, peak 255) and best-checkpoint selection.

    Attributes:
        every_steps / every_min: validate when either is reached (0 disables that trigger).
        synthetic: clip folders with ``rain/`` and ``clean/`` (``rtderain synth --write-clean``).
        nturain: a folder with ``rain/`` and ``gt/`` (``../shared/data/nturain_a1``), if present.
        rain100h: likewise for ``rain100h_dev``.
        frames: how many evenly spaced frames of each set to use (cheap).
        max_side: centre-crop validation frames to at most this side (0 = full frame).
        targets: optional target Y-PSNR per set name (``syn0``, ``nturain``, ``rain100h``);
            when given, the selection score is the smallest margin ``output − target`` over
            those sets, else the mean gain over the input on every set.
    """

    every_steps: int = 500
    every_min: float = 10.0
    synthetic: tuple[str, ...] = ()
    nturain: str | None = None
    rain100h: str | None = None
    frames: int = 4
    max_side: int = 0
    targets: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_range("every_steps", self.every_steps, 0)
        check_range("every_min", self.every_min, 0.0)
        check_range("frames", self.frames, 0)
        check_range("max_side", self.max_side, 0)


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run executes."""

    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    threads: int = 0  # torch.set_num_threads per process; 0 = torch default
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False  # autocast to bfloat16 (CPU or CUDA)
    log_every: int = 20
    ckpt_every_min: float = 5.0
    # Start from these weights (a checkpoint or a shipped weights file of the same model):
    # network and memory items are loaded; optimiser, schedule and step start afresh.
    # Ignored by --resume when last.pt exists (the run continues where it was).
    init: str = ""
    # A frozen network whose background the student also matches (``loss.teacher`` > 0):
    # a checkpoint or weights file of any model (distillation, e.g. mgid into mgid-rt).
    teacher: str = ""

    def __post_init__(self) -> None:
        check_range("threads", self.threads, 0, 1024)
        check_range("log_every", self.log_every, 1)
        check_range("ckpt_every_min", self.ckpt_every_min, 0.0)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device={self.device!r} is not auto, cpu, cuda or cuda:N")
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"name={self.name!r} must be a plain folder name")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training experiment."""

    model: str = "mgid"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = DataConfig()
    loss: LossWeights = LossWeights()
    optim: OptimConfig = OptimConfig()
    val: ValConfig = ValConfig()
    run: RunConfig = RunConfig()

    def __post_init__(self) -> None:
        if self.loss.teacher > 0 and not self.run.teacher:
            raise ConfigError("loss.teacher > 0 needs run.teacher (the teacher's weights)")
        if self.data.teacher_rotate_deg > 0 and self.loss.teacher <= 0:
            raise ConfigError("data.teacher_rotate_deg > 0 needs loss.teacher > 0 (a teacher)")


def load_train_config(
    path: str | Path | None, overrides: tuple[str, ...] = ()
) -> tuple[TrainConfig, dict[str, Any]]:
    """Parse a training YAML (plus ``key=value`` overrides); also return the raw mapping."""
    raw = load_yaml(path) if path else {}
    raw = apply_overrides(raw, overrides)
    return from_dict(TrainConfig, raw, where=str(path or "train config")), raw


def lr_at(cfg: TrainConfig, step: int, train_seconds: float) -> float:
    """Warm-up then cosine from ``optim.lr`` to ``optim.min_lr`` (see OptimConfig)."""
    o = cfg.optim
    if o.warmup and step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    progress = step / max(o.steps, 1)
    if o.time_budget_min:
        progress = max(progress, train_seconds / (60.0 * o.time_budget_min))
    progress = min(max(progress, 0.0), 1.0)
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * progress))
