"""``rtderain synth``: render rainy time-lapse clips from clean footage."""

from __future__ import annotations

import click


@click.command("synth")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (one sub-folder per clip).")
@click.option("--frames", default=8, show_default=True, help="Frames T per clip.")
@click.option("--clips-per-source", default=1, show_default=True,
              help="Clips rendered from each clean source.")
@click.option("--preset", default="mixed", show_default=True,
              help="Rain regime: light (short streaks), heavy (dense, wide), storm (Rain100H-"
              "like downpour), long (video-shutter streaks), drizzle (faint, dense), diagonal "
              "(20-35 degrees from vertical, 1-3 px) or mixed (light and heavy); "
              "docs/training.md has every range.")
@click.option("--seed", default=0, show_default=True, help="Seed; same seed, same clips.")
@click.option("--write-clean", is_flag=True, help="Also write the true background frames.")
@click.option("--max-size", default=640, show_default=True,
              help="Downscale sources so the longer side is at most this (never upscaled).")
@click.option("--sequences", is_flag=True,
              help="Each folder of images is one aligned time-lapse (not one clip per image).")
@click.option("--start-index", default=0, show_default=True,
              help="Number of the first clip (to add clips to an existing folder).")
@click.option("--still", is_flag=True,
              help="Fixed camera: no background jitter or gain change (sharper temporal "
              "median, the training target).")
def synth(
    sources: tuple[str, ...],
    out_dir: str,
    frames: int,
    clips_per_source: int,
    preset: str,
    seed: int,
    write_clean: bool,
    max_size: int,
    sequences: bool,
    start_index: int,
    still: bool,
) -> None:
    """Render rainy time-lapse clips (independent rain per frame) from clean SOURCES.

    SOURCES are images or folders of images (searched recursively). Each clean image
    becomes a static-camera clip whose frames differ only by rain, veil, drops and small
    camera effects (jitter, gain, noise, JPEG). Parameter ranges: docs/training.md.
    """
    from rtderain.synth.build import build_clips, collect_sources
    from rtderain.synth.render import PRESETS

    if preset not in (*PRESETS, "mixed"):
        raise click.BadParameter(
            f"{preset!r} is not one of {', '.join([*PRESETS, 'mixed'])}", param_hint="--preset"
        )
    srcs = collect_sources(sources, sequences=sequences)
    n = build_clips(
        srcs,
        out_dir,
        frames=frames,
        clips_per_source=clips_per_source,
        preset=preset,
        seed=seed,
        write_clean=write_clean,
        max_size=max_size,
        start_index=start_index,
        still=still,
    )
    click.echo(f"wrote {n} clips of {frames} frames to {out_dir}")
