"""Peak resident memory of `rtderain run` on a large clip (docs/memory.md has the readings).

Makes a clip of real rainy footage at the asked size (the shipped sample, scaled with
bicubic interpolation, H.264 crf 18), then runs ``python -m rtderain CLIP -o OUT ARGS...``
in a child process and prints its peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the
largest process, here the only one), wall time and frames written, one line.

    python tools/peak_rss.py --size 3840x2160 --frames 8 -- -m mgid
    python tools/peak_rss.py --size 3840x2160 --frames 8 -- -m mgid-rt --max-memory 4G
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    with av.open(str(ROOT / "samples" / "rainy_bunny.mp4")) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=src.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height),
                             interpolation=cv2.INTER_CUBIC)
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        dst.mux(stream.encode(None))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="3840x2160", help="WxH of the clip (default 3840x2160)")
    ap.add_argument("--frames", type=int, default=8, help="frames (default 8)")
    ap.add_argument("args", nargs="*", help="arguments for `rtderain run` (after --)")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip, out = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        make_clip(clip, width, height, a.frames)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "rtderain", str(clip), "-o", str(out), "-q",
                            *a.args], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed")
            return r.returncode
        with av.open(str(out)) as c:
            written = sum(1 for _ in c.decode(video=0))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (1 << 20)  # KiB -> GiB
    notes = "; ".join(line for line in r.stderr.splitlines() if "frames of" in line)
    print(f"{width}x{height} x{a.frames} {' '.join(a.args)}: peak RSS {peak:.2f} GiB, "
          f"{wall:.0f} s, {written}/{a.frames} frames" + (f" ({notes})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
