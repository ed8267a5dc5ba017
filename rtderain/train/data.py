"""Time-lapse clip dataset: samples are frames of one clip with the same random crop.

A *clip* is a folder of frames of one static scene (``rtderain synth`` writes them under
``<clip>/rain/``; a plain folder of images works too) or a video file. The index (the list
of clips and their frame paths) is built once; frames are decoded lazily and optionally
cached in memory (uint8), so large collections cost nothing until used.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

from rtderain.media.images import IMAGE_SUFFIXES as IMAGE_EXTS  # noqa: E402

VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def index_clips(roots: list[str | Path]) -> list[Path | list[Path]]:
    """Find clips under ``roots``: each entry is a list of frame paths or a video path.

    A root may itself be a clip (a folder of frames, or ``<root>/rain/``), a video file, or
    a folder of clips. Hidden entries (``.clip_NNNNN.partial``, a clip ``rtderain synth``
    had not finished) are skipped.
    """
    clips: list[Path | list[Path]] = []
    for root in map(Path, roots):
        if root.is_file() and root.suffix.lower() in VIDEO_EXTS:
            clips.append(root)
            continue
        if not root.is_dir():
            raise RTDerainError(f"training data not found: {root}")
        own = _images(root / "rain") if (root / "rain").is_dir() else _images(root)
        if len(own) >= 2:
            clips.append(own)
            continue
        for sub in sorted(root.iterdir()):
            if sub.name.startswith("."):
                continue
            if sub.is_file() and sub.suffix.lower() in VIDEO_EXTS:
                clips.append(sub)
            elif sub.is_dir():
                frames = _images(sub / "rain") if (sub / "rain").is_dir() else _images(sub)
                if len(frames) >= 2:
                    clips.append(frames)
    if not clips:
        raise RTDerainError(f"no clips (folders of >= 2 frames or videos) in {list(roots)}")
    return clips


def _read_video(path: Path) -> np.ndarray:
    import av  # heavy import only when a video clip is used

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(frames) < 2:
        raise RTDerainError(f"video clip {path} has fewer than 2 frames")
    return np.stack(frames)


def _frame_size(clip: Path | list[Path]) -> tuple[int, int]:
    """(height, width) of a clip's frames, from a video's header or its first frame."""
    if isinstance(clip, Path):
        import av  # heavy import only when a video clip is used

        try:
            with av.open(str(clip)) as container:
                cc = container.streams.video[0].codec_context
                return cc.height, cc.width
        except (av.FFmpegError, IndexError):
            raise RTDerainError(f"video clip {clip} cannot be read") from None
    return _read_frames(clip[:1]).shape[1:3]


def _read_frames(paths: list[Path]) -> np.ndarray:
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise RTDerainError(f"cannot read training frame {p}")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    shape = out[0].shape
    bad = next((p for p, im in zip(paths, out, strict=True) if im.shape != shape), None)
    if bad is not None:
        raise RTDerainError(f"frame {bad} differs in size from the rest of its clip")
    return np.stack(out)


PSEUDO_GT = ("median", "mean", "quantile", "adaptive")


def _order_statistic(s: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of frames ``s`` already sorted along axis 0, float32 (linear
    interpolation between order statistics, numpy's default method)."""
    pos = q * (len(s) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    return s[lo].astype(np.float32) * (1 - (pos - lo)) + s[hi].astype(np.float32) * (pos - lo)


def temporal_quantile(frames: np.ndarray, q: float) -> np.ndarray:
    """Per-pixel quantile ``q`` over axis 0 of uint8 (T, H, W, 3) frames, float32 [0, 255]."""
    return _order_statistic(np.sort(frames, axis=0), q)


def median_minimum_gap(med: np.ndarray, low: np.ndarray) -> float:
    """A clip's rain amount for :func:`adaptive_pseudo`: the median over pixels of
    luma(temporal median) - luma(temporal minimum), in levels of 255."""
    return float(np.median(med.mean(axis=-1) - low.mean(axis=-1)))


def adaptive_pseudo(frames: np.ndarray, levels: tuple[float, float] = (8.0, 16.0)) -> np.ndarray:
    """Temporal pseudo ground truth that follows the amount of rain, float32 [0, 255].

    The median is unbiased where rain covers a pixel in few frames (light rain) but keeps
    dense rain; rain only brightens, so the temporal minimum is close to the background
    under dense rain (biased dark by noise, which light rain cannot afford). Per clip,
    ``gap`` = the median over pixels of luma(median) - luma(min): a few levels for light
    rain (noise, gain, JPEG), tens for dense rain. The target is the median below
    ``levels[0]``, the minimum above ``levels[1]``, linearly blended between.
    """
    s = np.sort(frames, axis=0)
    med, low = _order_statistic(s, 0.5), s[0].astype(np.float32)
    gap = median_minimum_gap(med, low)
    w = min(max((gap - levels[0]) / (levels[1] - levels[0]), 0.0), 1.0)
    return med * (1.0 - w) + low * w


def _rotated_crop(
    arr: np.ndarray, y: int, x: int, crop: int, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """The square ``crop`` centred where an axis-aligned crop at ``(y, x)`` would be,
    rotated by ``angle`` degrees (counter-clockwise): the affine map (2, 3) from the frame
    to the crop and the slices of the frame region it reads.

    The region is the crop's rotated footprint (plus a pixel of margin), moved inward
    where it would leave the frame, so no corner is empty; only where the frame is smaller
    than the footprint is the region clipped and the warp reflects (``BORDER_REFLECT``).
    """
    h, w = arr.shape[-3:-1]
    a = math.radians(angle)
    half = (crop * (abs(math.cos(a)) + abs(math.sin(a)))) / 2 + 1
    cy = min(max(y + crop / 2, half), h - half) if h >= 2 * half else h / 2
    cx = min(max(x + crop / 2, half), w - half) if w >= 2 * half else w / 2
    y0, y1 = max(0, math.floor(cy - half)), min(h, math.ceil(cy + half))
    x0, x1 = max(0, math.floor(cx - half)), min(w, math.ceil(cx + half))
    m = cv2.getRotationMatrix2D((cx - x0, cy - y0), angle, 1.0)
    m[:, 2] += (crop / 2 - (cx - x0), crop / 2 - (cy - y0))
    return m, np.s_[y0:y1, x0:x1]


def _warp(img: np.ndarray, m: np.ndarray, crop: int) -> np.ndarray:
    return cv2.warpAffine(np.ascontiguousarray(img), m, (crop, crop), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


class ClipDataset(Dataset):
    """Pairs (or ``frames`` frames) of one clip, one random crop shared by all of them.

    Augmentation (off by default; draws no random numbers when off): ``flip`` mirrors the
    crop left-right with probability 1/2, ``rotate_deg`` > 0 rotates it by an angle drawn
    uniformly in ``[-rotate_deg, rotate_deg]`` (a larger region of the frame is rotated
    and centre-cropped: no empty corners). The *same* transform is applied to every frame
    of the sample and to its pseudo ground truth, so the clip stays a static scene.

    Item: dict with ``frames`` (F, 3, crop, crop) float32 in [-1, 1] RGB and, when
    ``pseudo_gt`` is set, ``pseudo`` (3, crop, crop): a per-pixel temporal statistic over
    all frames of the clip (``median``, ``mean``, ``quantile`` at ``quantile``, or
    ``adaptive``: see :func:`adaptive_pseudo`).
    Randomness comes from ``torch``'s global generator (seeded by the trainer).
    """

    def __init__(
        self,
        roots: list[str | Path],
        crop: int = 128,
        frames: int = 2,
        max_frames_per_clip: int = 30,
        repeats: int = 1,
        cache: bool = True,
        pseudo_gt: str | None = None,
        quantile: float = 0.5,
        root_weights: tuple[int, ...] = (),
        adaptive_levels: tuple[float, float] = (8.0, 16.0),
        flip: bool = False,
        rotate_deg: float = 0.0,
        cache_frames_max_gb: float | None = None,
    ) -> None:
        if pseudo_gt not in (None, *PSEUDO_GT):
            raise RTDerainError(
                f"pseudo_gt must be one of {', '.join(PSEUDO_GT)}, not {pseudo_gt!r}"
            )
        if not 0 <= adaptive_levels[0] < adaptive_levels[1]:
            raise RTDerainError(f"adaptive_levels {list(adaptive_levels)} must rise from >= 0")
        if not 0 <= rotate_deg <= 90:
            raise RTDerainError(f"augment_rotate_deg={rotate_deg} must be in [0, 90]")
        if root_weights and len(root_weights) != len(roots):
            raise RTDerainError(
                f"root_weights {list(root_weights)} must have one integer per root ({len(roots)})"
            )
        self.clips: list[Path | list[Path]] = []
        for i, root in enumerate(roots):  # a root of weight w is listed w times
            self.clips.extend(index_clips([root]) * (root_weights[i] if root_weights else 1))
        self.crop, self.frames, self.repeats = crop, frames, max(1, repeats)
        self.max_frames = max_frames_per_clip
        self.cache = cache
        self.cache_frames_max = (None if cache_frames_max_gb is None
                                 else int(cache_frames_max_gb * 1e9))
        self._cached_bytes = 0
        self._shapes: dict[str, tuple[int, int, int]] = {}  # (T, H, W) of each decoded clip
        self._recent: tuple[str, np.ndarray] | None = None
        self.pseudo_gt, self.quantile = pseudo_gt, quantile
        self.adaptive_levels = adaptive_levels
        self.flip, self.rotate_deg = flip, float(rotate_deg)
        self._frames: dict[str, np.ndarray] = {}  # keyed by clip path (roots may repeat)
        self._pseudo: dict[str, np.ndarray] = {}
        log.info("clip dataset: %d clips from %s", len(self.clips), roots)
        self._check_crop_fits()

    def _check_crop_fits(self) -> None:
        """Refuse a crop larger than every clip before any clip is decoded: a smaller clip
        is upscaled to the crop, which for a crop far above every clip is gigabytes. Reads
        one frame's size per clip until one fits (usually the first)."""
        best = (0, 0)
        for clip in {str(c if isinstance(c, Path) else c[0]): c for c in self.clips}.values():
            size = _frame_size(clip)
            if min(size) >= self.crop:
                return
            best = max(best, size, key=min)
        raise RTDerainError(
            f"data.crop={self.crop} is larger than every clip (the largest is "
            f"{best[1]}x{best[0]}); use a crop of at most {min(best)}"
        )

    def __len__(self) -> int:
        return len(self.clips) * self.repeats

    def clip_frames(self, k: int) -> np.ndarray:
        """uint8 (T, H, W, 3) RGB frames of clip ``k`` (T <= max_frames_per_clip)."""
        clip = self.clips[k]
        key = str(clip if isinstance(clip, Path) else clip[0])
        if key in self._frames:
            return self._frames[key]
        if self._recent is not None and self._recent[0] == key:  # shape, then pseudo GT
            return self._recent[1]
        arr = _read_video(clip) if isinstance(clip, Path) else _read_frames(
            clip[: self.max_frames]
        )
        arr = arr[: self.max_frames]
        if arr.shape[0] < self.frames:
            raise RTDerainError(f"clip {clip} has {arr.shape[0]} frames, need {self.frames}")
        if min(arr.shape[1:3]) < self.crop:  # upscale small clips to the crop size
            s = self.crop / min(arr.shape[1:3])
            size = (max(self.crop, round(arr.shape[2] * s)),
                    max(self.crop, round(arr.shape[1] * s)))
            arr = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in arr])
        self._shapes[key] = arr.shape[:3]
        if self.cache and (self.cache_frames_max is None
                           or self._cached_bytes + arr.nbytes <= self.cache_frames_max):
            self._frames[key] = arr
            self._cached_bytes += arr.nbytes
        else:
            self._recent = (key, arr)  # the last uncached clip, decoded once per sample
        return arr

    def _picked_frames(self, k: int, pick: list[int]) -> np.ndarray:
        """uint8 (len(pick), H, W, 3) frames ``pick`` of clip ``k``: from the cache, or,
        for a folder clip whose frames are not cached, only those frames from disk (as
        :meth:`clip_frames` would give them)."""
        clip = self.clips[k]
        key = str(clip if isinstance(clip, Path) else clip[0])
        if key in self._frames or isinstance(clip, Path) or key not in self._shapes:
            return self.clip_frames(k)[pick]
        arr = _read_frames([clip[i] for i in pick])
        _, h, w = self._shapes[key]
        if arr.shape[1:3] != (h, w):  # a small clip, upscaled as clip_frames does
            arr = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in arr])
        return arr

    def _clip_shape(self, k: int) -> tuple[int, int, int]:
        clip = self.clips[k]
        key = str(clip if isinstance(clip, Path) else clip[0])
        if key not in self._shapes:
            self.clip_frames(k)
        return self._shapes[key]

    def clip_pseudo(self, k: int) -> np.ndarray:
        """float32 (H, W, 3) in [0, 255]: the clip's temporal pseudo ground truth."""
        clip = self.clips[k]
        key = str(clip if isinstance(clip, Path) else clip[0])
        if key in self._pseudo:
            return self._pseudo[key]
        arr = self.clip_frames(k)
        if self.pseudo_gt == "mean":
            p = arr.astype(np.float32).mean(axis=0)
        elif self.pseudo_gt == "adaptive":
            p = adaptive_pseudo(arr, self.adaptive_levels)
        else:
            p = temporal_quantile(arr, 0.5 if self.pseudo_gt == "median" else self.quantile)
        if self.cache:
            self._pseudo[key] = p
        return p

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k = index % len(self.clips)
        t, h, w = self._clip_shape(k)
        pick = torch.randperm(t)[: self.frames].tolist()
        y = int(torch.randint(0, h - self.crop + 1, ()).item())
        x = int(torch.randint(0, w - self.crop + 1, ()).item())
        flip = self.flip and bool(torch.rand(()) < 0.5)
        angle = (float(torch.empty(()).uniform_(-self.rotate_deg, self.rotate_deg))
                 if self.rotate_deg > 0 else 0.0)
        frames_np = self._transform(self._picked_frames(k, pick), y, x, angle, flip)
        frames = torch.from_numpy(frames_np)
        item = {"frames": frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0}
        if self.pseudo_gt:
            p = torch.from_numpy(self._transform(self.clip_pseudo(k)[None], y, x, angle, flip)[0])
            item["pseudo"] = p.permute(2, 0, 1) / 127.5 - 1.0
        return item

    def _transform(
        self, imgs: np.ndarray, y: int, x: int, angle: float, flip: bool
    ) -> np.ndarray:
        """The crop at ``(y, x)`` of (N, H, W, 3) ``imgs``, rotated by ``angle`` and
        mirrored if ``flip``: the same for every image; (N, crop, crop, 3), same dtype."""
        c = self.crop
        if angle:
            m, region = _rotated_crop(imgs, y, x, c, angle)
            out = np.stack([_warp(im[region], m, c) for im in imgs])
        else:
            out = imgs[:, y : y + c, x : x + c]
        if flip:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)
