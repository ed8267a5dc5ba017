"""Check the CUDA engines on this machine and print one table.

1. Parity: every CUDA engine that can run here (torch, onnxruntime, tensorrt) at fp32
   (TF32 off: GPU "fp32" is otherwise TF32 in cuDNN and TensorRT) and fp16, against eager
   fp32 on the CPU, through the uint8 path 8-bit video runs (pinned upload, normalise,
   network, quantise, download). Bounds: fp32 within 1 level, fp16 PSNR >= 40 dB.
2. Speed: end-to-end fps at 1280x720 and 1920x1080, fp16, pinned uint8 upload, one batch in
   flight. With PyAV: a synthetic clip is encoded, then decoded -> de-rained -> encoded by
   the file pipeline (NVENC if it opens, else libx264). Without PyAV: synthetic frames in
   memory through the same upload/compute/download path (the table says which).

Without CUDA (or with --cpu for a dry run on a tiny size) it says so: ``skipped: REASON``
and exit status 0. Bad arguments: one line on stderr, exit status 2. A time budget
(default 420 s) stops starting new rows, so the whole check stays under 8 minutes.

    python tools/gpu_check.py                    # on the CUDA machine
    python tools/gpu_check.py --cpu              # dry run here: tiny size, few frames
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENGINES = ("torch", "onnxruntime", "tensorrt")
MODELS = ("mgid-rt", "mgid")


@dataclass
class Row:
    """One line of the table."""

    check: str  # parity | fps
    model: str
    engine: str
    precision: str
    size: str
    result: str
    status: str  # ok | FAIL | n/a | skipped
    note: str = ""


def format_table(rows: list[Row], title: str) -> str:
    """The rows as one Markdown table under a title line."""
    head = ("check", "model", "engine", "precision", "size", "result", "status", "note")
    cells = [head] + [tuple(str(getattr(r, h)) for h in head) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([title, "", line(head), sep, *(line(c) for c in cells[1:])])


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size {text!r} is below 16x16")
    return w, h


def _names(known: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = [n for n in text.split(",") if n]
        bad = [n for n in names if n not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r} (known: {','.join(known)})")
        return names
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        print(f"gpu_check: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(description="Parity and end-to-end fps of the CUDA engines, one table.")
    p.add_argument("--cpu", action="store_true",
                   help="dry run on the CPU: 64x48, 4 frames (tests the script, not a GPU)")
    p.add_argument("--sizes", type=lambda s: [_size(v) for v in s.split(",")],
                   default=[(1280, 720), (1920, 1080)], help="WxH[,WxH] for fps")
    p.add_argument("--frames", type=int, default=120, help="frames per fps row")
    p.add_argument("--batch", type=int, default=4, help="frames per inference call")
    p.add_argument("--models", type=_names(MODELS), default=list(MODELS))
    p.add_argument("--engines", type=_names(ENGINES), default=list(ENGINES))
    p.add_argument("--synthetic", action="store_true",
                   help="fps from frames in memory even where PyAV is installed")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds after which no new row starts")
    args = p.parse_args(argv)
    if args.frames < 1 or args.batch < 1:
        p.error("--frames and --batch must be >= 1")
    if args.cpu:
        args.sizes, args.frames = [(64, 48)], min(args.frames, 4)
    return args


def skip_reason(cpu: bool) -> str | None:
    """Why this machine cannot run the check (None: it can)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not cpu and not torch.cuda.is_available():
        return f"CUDA is not available to torch {torch.__version__} (CUDA {torch.version.cuda})"
    return None


def has_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _engine(model, name, device, precision, size, batch, engines_dir):
    """(engine, None) or (None, why it cannot run)."""
    from rtderain.backends import create_engine
    from rtderain.errors import RTDerainError

    try:
        return create_engine(model, name, device, precision, size=size, batch=batch,
                             engines_dir=engines_dir), None
    except RTDerainError as exc:
        return None, str(exc).replace(f"--engine {name} cannot run: ", "")


def parity_rows(args, device: str, engines_dir: Path) -> list[Row]:
    import numpy as np
    import torch

    from rtderain.models.checkpoint import load_model

    w, h = (64, 48) if args.cpu else (320, 192)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)  # 3: a partial batch
    rows = []
    for name in args.models:
        with torch.no_grad():  # the reference: eager fp32 on the CPU
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
            ref = load_model(name).eval()(x)
        want = ((ref + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        for engine_name in args.engines:
            for precision in ("fp32", "fp16"):
                if time.perf_counter() > args.deadline:
                    rows.append(Row("parity", name, engine_name, precision, f"{w}x{h}",
                                    "-", "skipped", "time budget spent"))
                    continue
                rows.append(_parity(name, engine_name, precision, frames, want, device,
                                    engines_dir, args.batch))
    return rows


def _parity(name, engine_name, precision, frames, want, device, engines_dir, batch) -> Row:
    import numpy as np

    from rtderain.media.batching import derain_frames
    from rtderain.models.checkpoint import load_model

    h, w = frames.shape[1:3]
    engine, why = _engine(load_model(name), engine_name, device, precision, (h, w), 2,
                          engines_dir)
    size = f"{w}x{h}"
    if engine is None:
        return Row("parity", name, engine_name, precision, size, "-", "n/a", why[:80])
    got = derain_frames(engine, list(frames)).astype(np.float64)
    if precision == "fp32":
        levels = int(np.abs(got - want).max())
        ok = levels <= 1
        result = f"max {levels} level(s)"
    else:
        mse = float(np.mean((got - want) ** 2))
        score = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
        ok = score >= 40.0
        result = f"{score:.1f} dB"
    note = "TF32 off" if precision == "fp32" and device != "cpu" else ""
    return Row("parity", name, engine_name, precision, size, result, "ok" if ok else "FAIL",
               note)


def fps_rows(args, device: str, engines_dir: Path, use_av: bool) -> list[Row]:
    from rtderain.models.checkpoint import load_model

    precision = "fp32" if device == "cpu" else "fp16"
    rows = []
    for name in args.models:
        for engine_name in args.engines:
            for w, h in args.sizes:
                size = f"{w}x{h}"
                if time.perf_counter() > args.deadline:
                    rows.append(Row("fps", name, engine_name, precision, size, "-",
                                    "skipped", "time budget spent"))
                    continue
                engine, why = _engine(load_model(name), engine_name, device, precision,
                                      (h, w), args.batch, engines_dir)
                if engine is None:
                    rows.append(Row("fps", name, engine_name, precision, size, "-", "n/a",
                                    why[:80]))
                    continue
                if use_av:
                    fps, note = _fps_file(engine, w, h, args, engines_dir)
                else:
                    fps, note = _fps_memory(engine, w, h, args), "synthetic frames, no PyAV"
                note = f"batch {args.batch}, {note}"
                rows.append(Row("fps", name, engine_name, precision, size, f"{fps:.1f} fps",
                                "ok", note))
    return rows


def _fps_memory(engine, w: int, h: int, args) -> float:
    """Frames in memory through submit/collect with one batch in flight (no decode or
    encode): the engine and transfer path alone."""
    import numpy as np

    from rtderain.media.batching import submit_frames

    frames = np.random.default_rng(1).integers(0, 256, (args.batch, h, w, 3), dtype=np.uint8)
    submit_frames(engine, list(frames))()  # warm-up: cuDNN autotuning, allocations
    start, pending, done = time.perf_counter(), None, 0
    while done < args.frames:
        queued = submit_frames(engine, list(frames))
        if pending is not None:
            pending()
        pending, done = queued, done + args.batch
    pending()
    return done / (time.perf_counter() - start)


def _fps_file(engine, w: int, h: int, args, folder: Path) -> tuple[float, str]:
    """Decode -> de-rain -> encode of a synthetic clip by the file pipeline."""
    import av
    import numpy as np

    from rtderain.media.encoders import EncodeOptions, check_encoder
    from rtderain.media.transcode import PipelineOptions, derain_video

    src, dst = folder / f"in_{w}x{h}.mp4", folder / f"out_{w}x{h}.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        rng = np.random.default_rng(2)
        base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for i in range(args.frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    encode = EncodeOptions(codec="h264_nvenc", preset="fast")
    encoder = check_encoder(encode).name
    summary = derain_video(src, dst, engine,
                           PipelineOptions(batch=args.batch, encode=encode, overwrite=True))
    return summary.fps, f"file via PyAV, encoder {encoder}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = skip_reason(args.cpu)
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    import torch

    args.deadline = time.perf_counter() + args.budget
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        gpu = torch.cuda.get_device_name(0)
    else:
        gpu = "CPU dry run"
    use_av = has_av() and not args.synthetic
    with tempfile.TemporaryDirectory(prefix="rtderain-gpu-check-") as tmp:
        rows = parity_rows(args, device, Path(tmp))
        if device == "cuda":  # fps in the mode video runs: TF32 as the user's torch has it
            torch.backends.cudnn.allow_tf32 = True
        rows += fps_rows(args, device, Path(tmp), use_av)
    title = (f"gpu_check on {gpu}: torch {torch.__version__} (CUDA {torch.version.cuda}), "
             f"{'PyAV' if use_av else 'no PyAV (synthetic frames)'}")
    print(format_table(rows, title))
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
