"""Y-PSNR validation of a model on paired folders, frame by frame (pad, de-rain, crop back).

Also used to measure shipped weights on the benchmarks (``python -m
rtderain.train.validate WEIGHTS DATASET...``).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rtderain.errors import RTDerainError
from rtderain.evaluation.datasets import find_sequences, to_uint8
from rtderain.evaluation.metrics import psnr
from rtderain.media.images import list_images, read_image

log = logging.getLogger(__name__)

def _read(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB (16-bit files rounded to 8 bits)."""
    return to_uint8(read_image(path))


def paired_frames(folder: str | Path) -> list[tuple[Path, Path]]:
    """(rainy, clean) path pairs of a benchmark folder (``rain/`` + ``gt/`` or ``clean/``)
    or of a folder of clips that each have them (e.g. ``rtderain synth --write-clean``):
    the sequences of :func:`rtderain.evaluation.datasets.find_sequences`, frames matched by
    sorted name."""
    pairs: list[tuple[Path, Path]] = []
    for seq in find_sequences(folder):
        rain, gt = list_images(seq.rain), list_images(seq.gt)
        if len(rain) != len(gt):
            raise RTDerainError(f"{seq.rain.parent}: {len(rain)} rainy but {len(gt)} clean frames")
        pairs.extend(zip(rain, gt, strict=True))
    return pairs


def _centre(img: np.ndarray, side: int) -> np.ndarray:
    if side <= 0:
        return img
    h, w = img.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y : y + side, x : x + side]


def evenly_spaced(pairs: list[tuple[Path, Path]], frames: int) -> list[tuple[Path, Path]]:
    """``frames`` evenly spaced pairs, first and last included (0, or at least all: all)."""
    if not frames or frames >= len(pairs):
        return pairs
    return [pairs[i] for i in np.linspace(0, len(pairs) - 1, frames).round().astype(int)]


@torch.no_grad()
def derain_rgb(model: torch.nn.Module, rgb: np.ndarray, device: str = "cpu") -> np.ndarray:
    """De-rain one uint8 (H, W, 3) RGB frame; pads (reflect) to ``model.multiple``."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1.0
    h, w = rgb.shape[:2]
    m = model.multiple
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    y = model(x)[..., :h, :w]
    y = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return y[0].permute(1, 2, 0).cpu().numpy()


def evaluate_pairs(
    model: torch.nn.Module,
    pairs: list[tuple[Path, Path]],
    frames: int = 0,
    max_side: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean Y-PSNR of the input and of the output over ``frames`` evenly spaced pairs
    (0 = all). Returns ``{"input": dB, "output": dB, "frames": n}``."""
    pairs = evenly_spaced(pairs, frames)
    was_training = model.training
    model.eval()
    pin, pout = [], []
    try:
        for rain_path, gt_path in pairs:
            rain, gt = _centre(_read(rain_path), max_side), _centre(_read(gt_path), max_side)
            out = derain_rgb(model, rain, device)
            pin.append(psnr(rain, gt))
            pout.append(psnr(out, gt))
    finally:
        model.train(was_training)
    finite = [v for v in pin if math.isfinite(v)]
    return {
        "input": float(np.mean(finite)) if finite else math.inf,
        "output": float(np.mean(pout)),
        "frames": len(pairs),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the Y-PSNR table of a weights file on benchmark folders (all frames)."""
    from rtderain.models.checkpoint import load_model

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("weights")
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(weights=args.weights)
    for ds in args.datasets:
        r = evaluate_pairs(model, paired_frames(ds))
        print(f"{model.config.name}\t{Path(ds).name}\tframes={r['frames']}\t"
              f"input={r['input']:.2f}\toutput={r['output']:.2f} dB (Y-PSNR)")


if __name__ == "__main__":
    main()
