"""The frozen teacher's targets (``loss.teacher``), and rotation after the teacher
(``data.teacher_rotate_deg``): rain at angles the teacher never learned, taught by the
teacher itself.

A teacher that removes near-vertical rain well (the shipped ``mgid``) sees each training
crop upright; the crop, its pseudo ground truth and the teacher's background are then
rotated together by a random angle and centre-cropped, and the student learns to give the
rotated teacher background for the rotated (now diagonal) rain. Rotating the scene with
the rain keeps the target exact: de-raining commutes with rotation for a rotation-
equivariant ideal de-rainer, so the student inherits the teacher's upright quality at
every angle, which neither the Siamese losses (no clean frames) nor a teacher shown the
diagonal rain itself can give. With the student initialised from the teacher, an angle
near 0 is plain self-distillation: it anchors what the student already does well.

The loader reads crops of :func:`loader_crop` pixels (large enough that a square of
``crop`` pixels rotated by any angle up to the maximum stays inside); :func:`teach` runs
the teacher and rotates.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rtderain.models.mgid import MGID


def loader_crop(crop: int, max_deg: float, multiple: int = 8) -> int:
    """The side of the crops to load so that a ``crop`` square rotated by up to
    ``max_deg`` degrees (at most 45 counts: the footprint is largest there) fits,
    rounded up to ``multiple``; ``crop`` itself when ``max_deg`` is 0 (no rotation)."""
    if not max_deg:
        return crop
    a = math.radians(min(abs(max_deg), 45.0))
    need = math.ceil(crop * (math.cos(a) + math.sin(a))) + 2  # a pixel of margin each side
    return -(-need // multiple) * multiple


def rotation_grid(angles: torch.Tensor, size_in: int, size_out: int) -> torch.Tensor:
    """Sampling grid (N, size_out, size_out, 2) for :func:`rotate`: the centred
    ``size_out`` square of each ``size_in`` image, rotated by ``angles`` (N,) degrees
    (counter-clockwise on screen). Angle 0 reads the centre crop exactly (integer offset)."""
    a = torch.deg2rad(angles.double())
    s = size_out / size_in
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    zero = torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1),
                         torch.stack([sin, cos, zero], -1)], 1)  # (N, 2, 3)
    return F.affine_grid(theta.float(), [len(angles), 1, size_out, size_out],
                         align_corners=False)


def rotate(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, size_in, size_in) sampled on ``grid`` (bilinear): (N, C, out, out)."""
    return F.grid_sample(x.float(), grid.to(x.device), mode="bilinear",
                         padding_mode="reflection", align_corners=False)


def teach(
    teacher: MGID | None,
    pair: torch.Tensor,
    pseudo: torch.Tensor | None,
    max_deg: float,
    crop: int,
    autocast: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The student's inputs and targets for one step: ``pair`` (2N, 3, S, S), the
    teacher's background of it (or None without a teacher) and ``pseudo`` (N, 3, S, S) or
    None. With ``max_deg`` > 0 each sample (both frames of a pair alike) is rotated by an
    angle uniform in +-``max_deg`` after the teacher has seen it upright, and centre-cropped
    to ``crop`` (angles from torch's global generator, as the data's)."""
    t = None
    if teacher is not None:
        with autocast(), torch.no_grad():
            t = teacher.forward_train(pair)["background"]
    if max_deg:
        angles = torch.empty(len(pair) // 2).uniform_(-max_deg, max_deg)
        grid = rotation_grid(angles, pair.shape[-1], crop)
        both = grid.repeat(2, 1, 1, 1)  # the two frames of a pair turn alike
        pair = rotate(pair, both)
        t = None if t is None else rotate(t, both)
        pseudo = None if pseudo is None else rotate(pseudo, grid)
    return pair, t, pseudo
