"""Peak resident memory of one engine build and one batch (the readings behind
rtderain/resources.py's estimate; docs/memory.md tables them).

Prints, for MODEL ENGINE PRECISION at HEIGHT x WIDTH and BATCH, the process's peak RSS
after loading, after building the engine and after one batch of random frames, in MiB.
Use an empty engine cache (``RTDERAIN_ENGINES=$(mktemp -d)``) to measure the build.

    RTDERAIN_ENGINES=$(mktemp -d) python tools/engine_footprint.py mgid openvino bf16 1024 2048 1
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("engine", help="auto, torch, onnxruntime, openvino")
    ap.add_argument("precision", help="auto, fp32, bf16, int8")
    ap.add_argument("height", type=int)
    ap.add_argument("width", type=int)
    ap.add_argument("batch", type=int)
    a = ap.parse_args()
    import rtderain
    from rtderain.media.batching import derain_frames
    from rtderain.resources import total_memory

    # A budget as large as the machine: the engine as asked, untiled (or a one-line refusal).
    d = rtderain.Derainer(a.model, engine=a.engine, precision=a.precision, batch=a.batch,
                          tile="off", max_memory=total_memory())
    loaded = _peak_mib()
    engine = d.engine_for(a.height, a.width, a.batch)
    built = _peak_mib()
    frames = np.random.default_rng(0).integers(0, 256, (a.batch, a.height, a.width, 3),
                                               dtype=np.uint8)
    t = time.perf_counter()
    derain_frames(engine, frames)
    seconds = time.perf_counter() - t
    print(f"{a.model} {a.engine} {a.precision} {a.width}x{a.height} b{a.batch}: peak RSS "
          f"loaded {loaded:.0f}, built {built:.0f}, after a batch {_peak_mib():.0f} MiB "
          f"({seconds:.1f} s; {engine.description})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
