"""Distillation: ``loss.teacher`` pulls the student's background towards a frozen teacher's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtderain.config import from_dict
from rtderain.errors import ConfigError
from rtderain.models import build_model
from rtderain.models.checkpoint import save_checkpoint
from rtderain.train.config import TrainConfig
from rtderain.train.trainer import Trainer


def _raw(clips: Path, out: Path, teacher: str) -> dict:
    only_teacher = {"background": 0.0, "cross": 0.0, "self": 0.0, "bsw": 0.0, "teacher": 1.0}
    return {
        "model": "mgid-rt",
        "data": {"roots": [str(clips)], "crop": 32, "batch": 2},
        "loss": only_teacher,
        "optim": {"lr": 2e-3, "steps": 100, "warmup": 1},
        "val": {"synthetic": [], "every_steps": 0, "every_min": 0},
        "run": {"name": "d", "out_dir": str(out), "threads": 1, "teacher": teacher},
    }


def _gap(trainer: Trainer, batch: torch.Tensor) -> float:
    with torch.no_grad():
        mine = trainer.model.forward_train(batch)["background"]
        theirs = trainer.teacher.forward_train(batch)["background"]
    return float((mine - theirs).abs().mean())


def test_teacher_term_moves_the_student_to_the_teacher(tiny_clips: Path, tmp_path: Path) -> None:
    """A teacher of another architecture (mgid) that darkens every pixel: an untrained
    mgid-rt (identity) learns to follow it, and the teacher itself never changes."""
    net = build_model("mgid")
    with torch.no_grad():
        net.head.bias.fill_(0.25)  # rain 0.25 everywhere: background = input - 0.25
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(net, teacher)
    raw = _raw(tiny_clips, tmp_path, str(teacher))
    torch.manual_seed(0)
    trainer = Trainer(from_dict(TrainConfig, raw), raw)
    assert trainer.teacher is not None and trainer.teacher.config.name == "mgid"
    assert not any(p.requires_grad for p in trainer.teacher.parameters())
    before_teacher = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    batch = trainer._batch()["frames"][:, 0]
    start = _gap(trainer, batch)
    losses = [trainer.train_step()["lt"] for _ in range(25)]
    assert _gap(trainer, batch) < 0.5 * start
    assert min(losses[-5:]) < losses[0]
    after = trainer.teacher.state_dict()
    assert all(torch.equal(before_teacher[k], after[k]) for k in after), "teacher is frozen"


def test_teacher_weight_without_teacher_file_is_a_config_error(tmp_path: Path) -> None:
    raw = _raw(tmp_path, tmp_path, "")
    with pytest.raises(ConfigError, match="run.teacher"):
        from_dict(TrainConfig, raw)
