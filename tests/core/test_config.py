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
