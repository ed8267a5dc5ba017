"""``rtderain stream SOURCE``: live de-raining from a webcam, a network stream or a file."""

from __future__ import annotations

import logging
import signal
import threading

import click

from rtderain.cli.lazy import PRECISION_CHOICES, memory_options
from rtderain.errors import RTDerainError
from rtderain.util import parse_size, redact_url

log = logging.getLogger(__name__)


def _key_values(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RTDerainError(f"{option} wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def _thread_settings(threads: int | None) -> dict | None:
    """Backend settings that cap inference threads (torch's pool, process-wide, too)."""
    if threads is None:
        return None
    import torch

    from rtderain.backends.registry import thread_settings

    torch.set_num_threads(threads)
    return thread_settings(threads)


# Keys of a `run:` section that mean the same for `stream` (configs/realtime.yaml works
# for both); `run`-only keys are ignored here.
_RUN_KEYS = {"model", "weights", "engine", "device", "precision", "max_memory", "tile",
             "orient"}
# Frames between two streak-angle estimates of --orient auto (rtderain.media.orient):
# about 0.5 s at 30 fps; the estimate costs about 12 ms of a 720p frame.
ORIENT_EVERY = 15
_RUN_ONLY = {"batch", "queue_frames"}
_ENCODE_KEYS = {"codec", "crf", "preset"}


def _load_config(ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
    """``-c FILE``: a ``stream:`` section (keys are the option names, ``-`` as ``_``), or
    else a ``run:`` section's model, engine, device, precision and ``encode`` (for the
    recording). Values become the options' defaults; the command line overrides them."""
    if path is None:
        return None
    from rtderain.config import load_yaml
    from rtderain.errors import ConfigError

    data = load_yaml(path)
    names = {p.name for p in ctx.command.params if p.name not in ("source", "config_path")}
    if "stream" in data:
        section, where = data["stream"] or {}, f"{path}: stream"
        defaults = dict(section)
    else:
        section, where = data.get("run", data) or {}, f"{path}: run"
        defaults = {k: v for k, v in section.items() if k in _RUN_KEYS}
        encode = section.get("encode") or {}
        if not isinstance(encode, dict):
            raise ConfigError(f"{where}: encode must be a mapping")
        bad = sorted(set(encode) - _ENCODE_KEYS - {"pix_fmt", "options"})
        if bad:
            raise ConfigError(f"{where}: encode: unknown key {bad[0]!r}")
        defaults.update({k: v for k, v in encode.items() if k in _ENCODE_KEYS})
        section = {k: v for k, v in section.items() if k not in _RUN_ONLY | {"encode"}}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(defaults) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {known})")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("source")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              is_eager=True, expose_value=False, callback=_load_config,
              help="YAML file with a `stream:` section (option names as keys) or a `run:` "
                   "section (model, engine, device, precision, encode); options override it.")
@click.option("-m", "--model", default="mgid-rt", show_default=True,
              help="Model: mgid-rt (real time), mgid-lite (faster, luma) or mgid (paper).")
@click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file instead of the shipped weights.")
@click.option("--engine", default="auto", show_default=True,
              help="Backend: auto, torch, onnxruntime, openvino, tensorrt.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES),
              default="auto", show_default=True, help="Inference precision.")
@memory_options
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for inference (default: the backend's; 1 is often best "
                   "on a busy 2-core machine).")
@click.option("--temporal", type=click.Choice(["off", "causal"]), default="causal",
              show_default=True,
              help="Temporal stage after the network: causal (on a still camera the past 4 "
                   "frames replace the rain the network left: +3.8 dB on still held-out "
                   "clips, within 0.1 dB of per frame on moving ones; adds no waiting and "
                   "~4-8 ms per 720p frame) or off. docs/temporal.md.")
@click.option("--temporal-radius", type=click.IntRange(1, 8), default=None,
              help="Past frames the causal stage looks at (default 4).")
@click.option("--realtime", is_flag=True,
              help="Play a file SOURCE at its own frame rate, dropping frames like a camera "
                   "(default for files: as fast as possible, every frame kept).")
@click.option("--loop", is_flag=True, help="Play a file SOURCE again when it ends.")
@click.option("-o", "--record", "record", type=click.Path(dir_okay=False), default=None,
              help="Record the de-rained frames to this file (timestamps from the source; "
                   "a reconnect gap stays a gap).")
@click.option("--overwrite", is_flag=True, help="Replace an existing recording file.")
@click.option("--codec", default="h264", show_default=True, help="Recording encoder.")
@click.option("--crf", type=click.IntRange(0, 63), default=20, show_default=True,
              help="Recording quality (lower is better).")
@click.option("--preset", default="veryfast", show_default=True, help="Recording preset.")
@click.option("--stream-out", "stream_out", default=None, metavar="URL",
              help="Publish the de-rained video: rtsp://server/path, rtmp://server/app/key, "
                   "udp://HOST:PORT or srt://HOST:PORT (H.264, MPEG-TS for udp/srt).")
@click.option("--show", is_flag=True, help="Show the de-rained video in a window (q quits).")
@click.option("--side-by-side", is_flag=True, help="With --show: input | de-rained.")
@click.option("--serve", default=None, metavar="HOST:PORT",
              help="Serve a web page with the live de-rained and raw views and stats "
                   "(e.g. 127.0.0.1:8080). A bind that is not loopback needs a token: one is "
                   "generated and printed with the URL unless --serve-token is given.")
@click.option("--serve-token", default=None, metavar="TOKEN", envvar="RTDERAIN_SERVE_TOKEN",
              help="The token --serve requires (?token=, cookie or 'Authorization: Bearer'); "
                   "also $RTDERAIN_SERVE_TOKEN.")
@click.option("--max-latency", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Drop frames that would come out later than this after "
                                      "capture (counted as dropped).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop after this long.")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), default=None,
              help="Stop after this many de-rained frames.")
@click.option("-i", "--input-option", "input_options", multiple=True, metavar="KEY=VALUE",
              help="FFmpeg input option (repeatable); overrides the low-latency defaults "
                   "(rtsp_transport=tcp, fflags=nobuffer, flags=low_delay, probesize=65536, "
                   "analyzeduration=500000); KEY= removes one.")
@click.option("--no-low-latency", is_flag=True, help="Do not apply the low-latency defaults.")
@click.option("--open-timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for a connection.")
@click.option("--stall-timeout", type=float, default=5.0, show_default=True,
              help="Seconds without data before a network stream counts as lost.")
@click.option("--reconnect-delay", type=float, default=0.5, show_default=True,
              help="First reconnect delay in seconds (doubles per failed attempt).")
@click.option("--reconnect-max-delay", type=float, default=8.0, show_default=True,
              help="Longest reconnect delay in seconds.")
@click.option("--max-reconnects", type=click.IntRange(min=0), default=None,
              help="Give up after this many failed reconnect attempts in a row "
                   "(default: never).")
@click.option("--capture-size", default=None, metavar="WxH",
              help="Size to ask of a webcam or device.")
@click.option("--capture-fps", type=float, default=None, help="Frame rate to ask of a webcam.")
@click.option("--stats-interval", type=float, default=5.0, show_default=True,
              help="Seconds between status lines.")
@click.option("-q", "--quiet", is_flag=True, help="No status lines and no summary.")
def stream(source, model, weights, engine, device, precision, max_memory, tile, orient, threads,
           temporal,
           temporal_radius, realtime, loop, record,
           overwrite, codec, crf, preset, stream_out, show, side_by_side, serve, serve_token,
           max_latency,
           duration, max_frames, input_options, no_low_latency, open_timeout, stall_timeout,
           reconnect_delay, reconnect_max_delay, max_reconnects, capture_size, capture_fps,
           stats_interval, quiet) -> None:
    """De-rain a live SOURCE: a webcam index (0) or device (/dev/video0), an rtsp://,
    http(s)://, udp:// or srt:// URL, or a video file (with --realtime: at its own rate).

    \b
    The newest frame always wins: when inference falls behind, older frames are dropped
    and counted, so latency stays bounded. A dropped or stalled network stream is
    reconnected with backoff; the gap is logged, never filled with fake frames. Sinks
    (any combination): --show, --record FILE, --stream-out URL, --serve HOST:PORT.
    Ctrl-C stops and closes every sink (the recording is a valid file). Without a sink
    the command just measures: fps and capture -> output latency (p50/p95).

    \b
    Examples:
      rtderain stream 0 --show --side-by-side
      rtderain stream rtsp://cam.local/stream1 --record clean.mp4 --serve 127.0.0.1:8080
      rtderain stream rtsp://cam/live --stream-out udp://239.0.0.1:5000
      rtderain stream rainy.mp4 --realtime --duration 20      (measure latency and fps)
    """
    from rtderain.live.capture import SourceOptions, classify
    from rtderain.live.session import LiveOptions, make_reader, run_live
    from rtderain.live.sinks import RecordingSink, StreamSink, WindowSink
    from rtderain.live.stats import LiveStats
    from rtderain.media.writer import EncodeOptions

    kind = classify(source)
    if (realtime or loop) and kind != "file":
        log.info("--realtime and --loop only apply to files; %s is live already", kind)
    if side_by_side and not show:
        raise RTDerainError("--side-by-side goes with --show")
    if serve_token is not None and (not serve or not serve_token.strip()):
        raise RTDerainError("--serve-token wants a non-empty token and goes with --serve")
    src_opts = SourceOptions(
        realtime=realtime,
        loop=loop,
        low_latency=not no_low_latency,
        input_options=_key_values(input_options, "--input-option"),
        open_timeout=open_timeout,
        stall_timeout=stall_timeout,
        reconnect_delay=reconnect_delay,
        reconnect_max_delay=reconnect_max_delay,
        max_reconnects=max_reconnects,
        capture_size=parse_size(capture_size, "--capture-size") if capture_size else None,
        capture_fps=capture_fps,
    )
    from rtderain.temporal import TemporalSettings

    options = LiveOptions(source=src_opts, max_latency=max_latency, duration=duration,
                          max_frames=max_frames, stats_interval=stats_interval,
                          temporal=TemporalSettings(temporal, radius=temporal_radius))
    from rtderain.api import Derainer

    # Before any sink opens: an explicit --model must match the weights' model, and the
    # memory budget must parse.
    explicit = click.get_current_context().get_parameter_source("model") in (
        click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.DEFAULT_MAP)
    backend_settings = _thread_settings(threads)
    derainer = Derainer(model if weights is None or explicit else None, weights=weights,
                        engine=engine, device=device, precision=precision, batch=1,
                        max_memory=max_memory, tile=tile or "auto", orient=orient or "auto",
                        orient_every=ORIENT_EVERY,
                        engine_settings=backend_settings)
    stats = LiveStats()
    stop = threading.Event()
    sinks = []
    try:
        if record:
            sinks.append(RecordingSink(record, EncodeOptions(codec=codec, crf=crf, preset=preset),
                                       overwrite=overwrite))
        if stream_out:
            sinks.append(StreamSink(stream_out))
        if show:
            sinks.append(WindowSink(stop, both=side_by_side))
        if serve:
            from rtderain.live.server import ServeSink

            sink = ServeSink(serve, lambda: stats.snapshot().as_dict(),
                             source_label=redact_url(source), token=serve_token)
            sinks.append(sink)
            if sink.generated_token:  # printed once, even with -q: the view needs it
                click.echo(f"live view: {sink.url}?token={sink.token}", err=True)
            elif not quiet:
                click.echo(f"live view: {sink.url}", err=True)
    except BaseException:
        for sink in sinks:  # close what was opened before the failure (e.g. the web server)
            sink.close()
        raise

    from rtderain.backends import create_engine

    reader = None
    try:
        reader = make_reader(source, options, stats, stop)
        size = reader.open()  # first-connection errors surface here
        if size is None:  # size unknown until the first frame: an engine for any size
            from rtderain.media.orient import oriented

            any_size = create_engine(derainer.network, engine=engine, device=device,
                                     precision=precision, settings=backend_settings)
            eng = oriented(any_size, None, derainer.settings.orient, ORIENT_EVERY)
        else:
            eng = derainer.engine_for(size[1], size[0])
    except BaseException:
        if reader is not None:
            reader.close()
        for sink in sinks:
            sink.close()
        raise
    if not quiet:
        click.echo(f"rtderain stream: {redact_url(source)} with {eng.description}, "
                   f"temporal {temporal}", err=True)

    def on_stats(snap) -> None:
        if not quiet:
            click.echo(f"[{snap.elapsed:6.1f} s] {snap.source_state}: {snap.line()}", err=True)

    def engine_for(height: int, width: int):  # a camera that changes mode, a reconnect
        return derainer.engine_for(height, width)

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        summary = run_live(reader, eng, sinks, options, stats=stats, stop=stop,
                           on_stats=on_stats, engine_for=engine_for)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        click.echo(f"done: {summary.line(mean=True)}, gap {summary.gap_seconds:.1f} s, "
                   f"{summary.elapsed:.1f} s", err=True)
        hint = summary.keep_up_hint(derainer.network.config.name, temporal)
        if hint:
            click.echo(hint, err=True)
