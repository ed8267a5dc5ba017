"""The networks: size, shapes, identity at initialisation, registry and checkpoints."""

from __future__ import annotations

import pytest
import torch

from rtderain.errors import RTDerainError
from rtderain.models import MODELS, build_model, count_parameters
from rtderain.models.checkpoint import load_model, save_checkpoint, weights_digest


def test_paper_model_size():
    # Paper Table VII: 0.81 M parameters (Table I with 3x3 transposed convs).
    assert 0.80e6 <= count_parameters(build_model("mgid")) <= 0.82e6


def test_realtime_model_is_much_smaller():
    assert count_parameters(build_model("mgid-rt")) < count_parameters(build_model("mgid")) / 5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes_and_identity_at_init(name):
    model = build_model(name).eval()
    m = model.multiple
    x = torch.rand(2, 3, 3 * m, 5 * m) * 2 - 1
    out = model.forward_train(x)
    assert out["background"].shape == x.shape == out["rain"].shape
    c = model.config.channels
    assert out["query"].shape == (2, c, 3, 5)  # bottleneck at 1/multiple
    # Zero-initialised rain head: an untrained network returns its input.
    torch.testing.assert_close(model(x), x)


def test_background_is_clamped():
    model = build_model("mgid").eval()
    with torch.no_grad():
        model.head.bias.fill_(-3.0)  # R = -3 everywhere: I - R would exceed 1
    x = torch.zeros(1, 3, 16, 16)
    assert model(x).max().item() == 1.0


def test_memory_is_a_buffer_not_a_parameter():
    model = build_model("mgid")
    names = dict(model.named_parameters())
    assert "memory.items" not in names
    assert "memory.items" in model.state_dict()
    items = model.memory.items
    assert items.shape == (20, 64)
    torch.testing.assert_close(items.norm(dim=1), torch.ones(20))


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    model = build_model("mgid-rt")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model.memory.items.copy_(torch.nn.functional.normalize(torch.randn(20, 16), dim=1))
    path = tmp_path / "rt.pt"
    save_checkpoint(model, path, meta={"steps": 5})
    loaded = load_model(weights=path)
    assert loaded.config == model.config
    assert weights_digest(loaded) == weights_digest(model)
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(RTDerainError, match="not 'mgid'"):
        load_model("mgid", path)


def test_bad_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RTDerainError, match="junk.pt"):
        load_model(weights=junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(RTDerainError, match="not an rtderain checkpoint"):
        load_model(weights=foreign)
    # Right header, wrong tensors: refused with the key named.
    model = build_model("mgid-rt")
    path = tmp_path / "bad.pt"
    save_checkpoint(model, path)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["head.weight"]
    torch.save(payload, path)
    with pytest.raises(RTDerainError, match="head.weight"):
        load_model(weights=path)
    with pytest.raises(RTDerainError, match="not found"):
        load_model(weights=tmp_path / "missing.pt")


def _crafted(tmp_path, edit):
    """A checkpoint of mgid-rt with its payload changed by ``edit(payload)``."""
    path = tmp_path / "crafted.pt"
    save_checkpoint(build_model("mgid-rt"), path)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda p: p.update(model=None), "'model' is a NoneType, not a mapping"),
        (lambda p: p.pop("model"), "'model' is missing"),
        (lambda p: p.pop("state_dict"), "'state_dict' is missing"),
        (lambda p: p.update(state_dict=list(p["state_dict"].values())), "'state_dict' is a list"),
        (lambda p: p["state_dict"].update({"head.weight": [1.0]}), "'head.weight' is not a tensor"),
        (lambda p: p["state_dict"].update({"head.weight": torch.zeros(3)}),
         "size mismatch for head.weight"),
        (lambda p: p["model"].update(channels=10**7), "channels=10000000 is out of range"),
        (lambda p: p["model"].update(colour="red"), "unknown key 'colour'"),
        (lambda p: p.update(meta=[1]), "'meta' is not a mapping"),
    ],
)
def test_crafted_checkpoints_are_one_line_naming_the_file(tmp_path, edit, needle):
    path = _crafted(tmp_path, edit)
    with pytest.raises(RTDerainError) as info:
        load_model(weights=path)
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_crafted_checkpoint_on_the_command_line_is_one_line(tmp_path):
    from tests.mediagen import run_cli, write_video

    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=2)
    path = _crafted(tmp_path, lambda p: p.update(state_dict=[1, 2]))
    result = run_cli(str(src), "-o", str(out), "--weights", str(path), "-q")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.strip().splitlines() == [
        f"rtderain: error: {path}: damaged checkpoint: 'state_dict' is a list, not a mapping"
    ]


def test_build_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("mgid-rt")
    assert torch.rand(1) == expected_next  # global stream untouched
    assert weights_digest(a) == weights_digest(build_model("mgid-rt"))
