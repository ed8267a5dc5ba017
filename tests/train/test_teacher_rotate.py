"""Rotation after the teacher (``data.teacher_rotate_deg``, ``rtderain.train.teacher``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtderain.config import from_dict
from rtderain.errors import ConfigError
from rtderain.models import build_model
from rtderain.models.checkpoint import save_checkpoint
from rtderain.train import teacher as T
from rtderain.train.config import TrainConfig
from rtderain.train.trainer import Trainer


def test_angle_zero_is_the_centre_crop_and_ninety_is_rot90() -> None:
    x = torch.rand(2, 3, 40, 40)
    centre = x[:, :, 8:32, 8:32]
    assert torch.allclose(T.rotate(x, T.rotation_grid(torch.zeros(2), 40, 24)), centre,
                          atol=1e-5)
    quarter = T.rotate(x, T.rotation_grid(torch.full((2,), 90.0), 40, 24))
    assert torch.allclose(quarter, torch.rot90(centre, 1, dims=(2, 3)), atol=1e-5)


def test_rotation_turns_the_way_opencv_does() -> None:
    """Positive angles are counter-clockwise on screen, as ``cv2.getRotationMatrix2D``."""
    img = np.zeros((64, 64), np.float32)
    img[:, 31:33] = 1.0  # a vertical streak through the centre
    ours = T.rotate(torch.from_numpy(img)[None, None],
                    T.rotation_grid(torch.tensor([30.0]), 64, 40))[0, 0].numpy()
    m = cv2.getRotationMatrix2D((31.5, 31.5), 30.0, 1.0)
    ref = cv2.warpAffine(img, m, (64, 64))[12:52, 12:52]
    mirrored = cv2.warpAffine(img, cv2.getRotationMatrix2D((31.5, 31.5), -30.0, 1.0),
                              (64, 64))[12:52, 12:52]
    assert np.abs(ours - ref).mean() < 0.1 * np.abs(ours - mirrored).mean()


@pytest.mark.parametrize("crop,deg", [(96, 40), (96, 45), (32, 10), (128, 90)])
def test_loader_crop_holds_every_rotated_crop(crop: int, deg: float) -> None:
    """Every sample of the rotated crop lies inside the loaded one (no reflected border),
    and the loaded side is a multiple of the model's."""
    side = T.loader_crop(crop, deg, 16)
    assert side % 16 == 0 and side >= crop
    grid = T.rotation_grid(torch.linspace(-deg, deg, 41), side, crop)
    inside = 1.0 - 1.0 / side  # the outermost pixel centres
    assert float(grid.abs().max()) <= inside + 1e-6


class _Recording(torch.nn.Module):
    """A non-equivariant 'teacher': background = input x a vertical ramp."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(tuple(x.shape))
        ramp = torch.linspace(0, 1, x.shape[-2]).view(1, 1, -1, 1)
        return {"background": x * ramp}


def test_teach_runs_the_teacher_upright_and_rotates_its_answer() -> None:
    teacher = _Recording()
    pair, pseudo = torch.rand(4, 3, 48, 48), torch.rand(2, 3, 48, 48)
    torch.manual_seed(3)
    out_pair, target, out_pseudo = T.teach(teacher, pair, pseudo, 40.0, 32)  # type: ignore[arg-type]
    assert teacher.seen == [(4, 3, 48, 48)]  # upright, at the loaded size, once
    assert out_pair.shape == target.shape == (4, 3, 32, 32) and out_pseudo.shape == (2, 3, 32, 32)
    torch.manual_seed(3)
    angles = torch.empty(2).uniform_(-40.0, 40.0)
    grid = T.rotation_grid(angles, 48, 32).repeat(2, 1, 1, 1)
    expected = T.rotate(teacher.forward_train(pair)["background"], grid)
    assert torch.allclose(target, expected)
    assert torch.allclose(out_pair, T.rotate(pair, grid))
    # both frames of a pair turn alike; the two samples by different angles
    assert torch.allclose(out_pair[0], T.rotate(pair[:1], grid[:1])[0])
    assert torch.allclose(out_pair[2], T.rotate(pair[2:3], grid[:1])[0])
    assert abs(float(angles[0] - angles[1])) > 1e-3
    # no rotation: inputs pass through, the teacher still answers
    same, t0, p0 = T.teach(teacher, pair, pseudo, 0.0, 32)  # type: ignore[arg-type]
    assert same is pair and p0 is pseudo and t0.shape == pair.shape


def _raw(clips: Path, out: Path, teacher: str, deg: float) -> dict:
    return {
        "model": "mgid-rt",
        "data": {"roots": [str(clips)], "crop": 32, "batch": 2, "teacher_rotate_deg": deg},
        "loss": {"teacher": 1.0},
        "optim": {"lr": 1e-3, "steps": 3, "warmup": 1},
        "val": {"synthetic": [], "every_steps": 0, "every_min": 0},
        "run": {"name": "r", "out_dir": str(out), "threads": 1, "teacher": teacher},
    }


def test_trainer_loads_larger_crops_and_trains_on_rotated_ones(
    tiny_clips: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(build_model("mgid-rt"), teacher)
    raw = _raw(tiny_clips, tmp_path, str(teacher), 40.0)
    trainer = Trainer(from_dict(TrainConfig, raw), raw)
    assert trainer.load_crop == T.loader_crop(32, 40.0, trainer.model.config.multiple) > 32
    assert trainer._batch()["frames"].shape[-1] == trainer.load_crop
    seen = []
    trainer.graph.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[-1]))
    terms = [trainer.train_step() for _ in range(2)]
    assert seen == [32, 32]  # the student sees the rotated crops only
    assert all(np.isfinite(t["lt"]) and np.isfinite(t["total"]) for t in terms)
    assert trainer.step == 2


def test_rotation_after_the_teacher_needs_a_teacher(tmp_path: Path) -> None:
    raw = _raw(tmp_path, tmp_path, "", 30.0)
    raw["loss"] = {"teacher": 0.0}
    with pytest.raises(ConfigError, match="teacher_rotate_deg"):
        from_dict(TrainConfig, raw)
