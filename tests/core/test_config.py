"""YAML configs: ``${NAME}`` from the environment; every shipped config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtderain.config import load_yaml
from rtderain.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_environment_variables_expand_in_nested_strings(tmp_path, monkeypatch):
    monkeypatch.setenv("RTDERAIN_DATA", "/data/here")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("val:\n  roots: ['${RTDERAIN_DATA}/a', b]\n  n: 3\n  s: '$HOME stays'\n")
    assert load_yaml(cfg) == {"val": {"roots": ["/data/here/a", "b"], "n": 3, "s": "$HOME stays"}}


def test_unset_variable_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RTDERAIN_NOPE", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  roots: ['${RTDERAIN_NOPE}/x']\n")
    with pytest.raises(ConfigError, match="RTDERAIN_NOPE is not set"):
        load_yaml(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_name_no_machine_path(path, monkeypatch):
    monkeypatch.setenv("RTDERAIN_DATA", "/D")
    monkeypatch.setenv("RTDERAIN_CKPT", "/C")
    text = repr(load_yaml(path))
    assert "/work/" not in text and "shared/data" not in text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("run: null\n", "run: expected a mapping of settings, got null"),
        ("run: [1, 2]\n", "run: expected a mapping of settings"),
        ("run:\n  queue_frames: 0\n", "queue_frames=0 is out of range"),
        ("run:\n  batch: -1\n", "batch=-1 is out of range"),
        ("run:\n  encode: {crf: 999}\n", "run.encode: crf=999 is out of range"),
        ("run:\n  encode:\n    options: {g: 250}\n", "run.encode.options.g: expected str, got 250"),
        ("run:\n  encode:\n    options: {tune: [a]}\n", "options.tune: expected str"),
        ("run: {model: mgid}\nrnu: {batch: 2}\n", "unknown top-level key 'rnu'"),
        ("queue_frames: 0\n", "queue_frames=0 is out of range"),
        ("1: 2\nfoo: 3\nmodel: mgid\n", "unknown key 1"),
    ],
)
def test_bad_run_config_is_one_line_naming_file_key_and_value(tmp_path, text, needle):
    from rtderain.jobs import load_run_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_run_settings(cfg)
    message = str(info.value)
    assert needle in message and str(cfg) in message and "\n" not in message


def test_shipped_run_configs_still_load():
    from rtderain.jobs import load_run_settings

    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_run_settings(root / "run.yaml").queue_frames == 8
    assert load_run_settings(root / "realtime.yaml").encode.crf == 20


def test_config_that_is_not_utf8_is_one_line_on_the_command_line(tmp_path):
    from tests.mediagen import run_cli

    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"run:\n  model: \xff\xfe\n")
    result = run_cli(str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.mp4"), "-c", str(cfg))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rtderain: error: {cfg}: not UTF-8 text (byte 14 is 0xff)"
    ]
