"""Export a training checkpoint as small shippable weights (fp32 model only + metadata).

``python -m rtderain.train.export RUN_DIR/best.pt rtderain/weights/mgid.pt --note "..."``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rtderain.models.checkpoint import load_model, read_checkpoint, save_checkpoint


def export_weights(src: str | Path, dst: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Copy the model (weights and memory items, float32) and the training metadata of
    ``src`` into a model-only checkpoint ``dst``; ``extra`` is merged into its meta."""
    meta = dict(read_checkpoint(src)["meta"])
    model = load_model(weights=src).float()
    keep = ("step", "train_minutes", "losses", "data", "loss_weights", "pseudo_gt",
            "command", "world_size", "val", "config", "ema")
    save_checkpoint(model, dst, {**{k: meta[k] for k in keep if k in meta}, **(extra or {})})


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: export SRC to DST with optional JSON ``--meta``."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--meta", default="{}", help="JSON object merged into the metadata")
    args = ap.parse_args(argv)
    export_weights(args.src, args.dst, json.loads(args.meta))


if __name__ == "__main__":
    main()
