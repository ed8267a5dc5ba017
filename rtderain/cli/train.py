"""``rtderain train``: train a de-raining network on time-lapse clips from a YAML config."""

from __future__ import annotations

import logging

import click


@click.command("train")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(exists=True),
              help="Experiment YAML (configs/train_*.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set optim.lr=5e-4 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue from <out_dir>/<name>/last.pt.")
def train(config_path: str, overrides: tuple[str, ...], resume: bool) -> None:
    """Train with the Siamese time-lapse losses (Lb, Lc, Ls, Lw, optional pseudo-GT).

    \b
    Multi-process (DDP, gloo on CPU / nccl on CUDA):
      torchrun --nproc_per_node=2 -m rtderain train -c configs/train_mgid.yaml
    """
    from rtderain.train.config import load_train_config
    from rtderain.train.trainer import train as run_training

    cfg, raw = load_train_config(config_path, overrides)
    root = logging.getLogger("rtderain")
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = run_training(cfg, raw, resume=resume)
    click.echo(f"checkpoints in {out}")
