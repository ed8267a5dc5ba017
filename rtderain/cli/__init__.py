"""The ``rtderain`` command.

``rtderain INPUT... -o OUTPUT`` de-rains files (the default ``run`` command); the other jobs
are subcommands, imported only when used.
"""

from __future__ import annotations

import logging
import re
import signal
import sys

import click

from rtderain import __version__
from rtderain.cli.lazy import LazyGroup
from rtderain.errors import RTDerainError
from rtderain.util import redact_url

# The one explicit table of subcommands: name -> "module:click command".
COMMANDS = {
    "run": "rtderain.cli.run:run",
    "models": "rtderain.cli.run:models",
    "train": "rtderain.cli.train:train",
    "synth": "rtderain.cli.synth:synth",
    "eval": "rtderain.cli.eval:eval_command",
    "bench": "rtderain.cli.bench:bench",
    "build": "rtderain.cli.build:build",
    "stream": "rtderain.cli.stream:stream",
    "export": "rtderain.cli.export:export",
    "batch": "rtderain.cli.batch:batch",
}


_GROUP_WORDS = ("--help", "-h", "--version")


class DefaultRunGroup(LazyGroup):
    """Treat ``rtderain video.mp4 -o out.mp4`` as ``rtderain run video.mp4 -o out.mp4``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Skip the group's own options (-v, -vv, --verbose) to find the first word.
        i = 0
        while i < len(args) and (args[i] == "--verbose" or re.fullmatch(r"-v+", args[i])):
            i += 1
        if i < len(args) and args[i] not in self.lazy and args[i] not in _GROUP_WORDS:
            args = [*args[:i], "run", *args[i:]]
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultRunGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Without a subcommand, `rtderain INPUT -o OUTPUT` runs `rtderain run`.",
)
@click.version_option(__version__, prog_name="rtderain")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Remove rain streaks from videos, images and live streams.

    \b
    Examples:
      rtderain rainy.mp4 -o clean.mp4            de-rain a video (audio, timestamps kept)
      rtderain a.mp4 b.mkv --out-dir clean/      several inputs
      rtderain frames/ -o clean_frames/          a folder of images
      rtderain stream rtsp://cam/live --show     live de-raining
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_redact_record)


def _redact_record(record: logging.LogRecord) -> bool:
    """A log filter: hide URL passwords in every line (source and stream-out URLs)."""
    message = record.getMessage()
    clean = redact_url(message)
    if clean != message:
        record.msg, record.args = clean, None
    return True


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C so that every ``finally``
    and ``except BaseException`` cleanup runs (the writer removes its temporary file)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP end a run as Ctrl-C does (exit 143 / 129); a signal the parent
    set to be ignored (``nohup``) stays ignored."""
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _terminate)


def _interrupted(exc: BaseException) -> None:
    """One line and the shell's exit status for a signal: 128 + its number (130 Ctrl-C)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, Terminated):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, Terminated):
        click.echo(f"rtderain: stopped by {signal.Signals(cause.signum).name}", err=True)
        sys.exit(128 + cause.signum)
    click.echo("rtderain: interrupted", err=True)
    sys.exit(130)


def main() -> None:
    """Console entry point: user-facing errors are one line on stderr and exit code 1;
    Ctrl-C, SIGTERM and SIGHUP exit 130, 143 and 129 after cleaning up."""
    install_signal_handlers()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        _interrupted(exc)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except RTDerainError as exc:
        click.echo(f"rtderain: error: {redact_url(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
