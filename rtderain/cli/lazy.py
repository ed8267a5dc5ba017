"""A click group whose subcommands are imported on first use (fast ``--help``, light imports)."""

from __future__ import annotations

import importlib

import click

# --precision of every command that runs a network (rtderain.backends.registry.PRECISIONS,
# without importing torch for --help; tests/core/test_cli.py keeps the two equal).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")
PRECISION_HELP = ("Inference precision: auto (default: int8 where its OpenVINO graph is "
                  "within 0.15 dB of float and faster, else bf16 with native bf16, fp16 on "
                  "CUDA, else fp32), fp32, bf16, fp16, int8 (OpenVINO, NNCF).")


class LazyGroup(click.Group):
    """``lazy`` maps command name -> ``"module:attribute"`` of a click command."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)
