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



ORIENT_HELP = ("Turn frames whose rain falls at an angle so that it falls vertically for "
               "the network, and the rain layer back: auto (default: where the streaks "
               "clearly lean 15-40 degrees from vertical, estimated per batch), off, or a "
               "fixed angle in degrees (positive: leaning like /). docs/orientation.md.")


def memory_options(command):
    """``--max-memory``, ``--tile`` (:mod:`rtderain.resources`) and ``--orient``
    (:mod:`rtderain.media.orient`), for commands that run a network on frames."""
    command = click.option("--orient", default=None, metavar="auto|off|DEG",
                           help=ORIENT_HELP)(command)
    command = click.option(
        "--tile", default=None, metavar="auto|off|N",
        help="Cut frames into overlapping N-pixel tiles, blended without seams: auto "
        "(default) tiles only frames too large for --max-memory; off never tiles.")(command)
    return click.option(
        "--max-memory", default=None, metavar="SIZE",
        help="Memory budget of the run, e.g. 8G or 512M (default auto: 40 % of this "
        "machine's memory). The batch is lowered and large frames tiled to fit it; "
        "a setting that cannot fit is refused before any work.")(command)


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
