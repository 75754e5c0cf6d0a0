"""`hybridgen bench JOBS.jsonl [--sample N] [--modes ...]`: A/B the modes on a sample of your own jobs.

Headline numbers are measured on someone else's jobs and machine; this runs the modes on yours, here,
in one process (the models load once and are shared), and says which mode to use and why. Nothing
it generates goes into the main database unless --keep is given.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hybridgen.commands.inputs import read_batch
from hybridgen.context import CliContext
from hybridgen.render import console
from hybridgen.progress import ItemProgress
from hybridgen.words import plural
from migrations import runner
from service.modes import MODES
from service.storage.db import get_engine, session_factory


def parse_modes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    """A comma-separated list of the modes the pipeline knows (service.modes.MODES); all by default."""
    if value is None:
        return list(MODES)
    modes = list(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: expected a comma-separated list of "
                                 f"{', '.join(MODES)}")
    return modes


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="JOBS.jsonl")
@click.option("--sample", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many of the file's jobs to run (a deterministic sample; the kinds take turns).")
@click.option("--modes", callback=parse_modes, default=None, metavar="MODE,...",
              help=f"The modes to compare, comma-separated (default: all, {','.join(MODES)}).")
@click.option("--warmup/--no-warmup", default=True, show_default=True,
              help="First run one job of each kind through every mode, untimed, so that one-time set-up "
                   "(constraint indexes, the fallback's grammar model) is not charged to the first mode.")
@click.option("--keep", is_flag=True, help="Store the measured batches in the main database (default: a "
                                           "temporary one, deleted afterwards).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a chart of the comparison to this PNG file (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of the table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines.")
def bench(file: Path, sample: int, modes: list[str], warmup: bool, keep: bool, png: Path | None, as_json: bool,
          quiet: bool) -> None:
    """Run a sample of JOBS.jsonl in each mode on this machine and compare them: items per hour, pass
    rate per kind, tokens per forward, seconds per stage, tokens and seconds per 1,000 items, and the
    mode to use for this workload, with the reason."""
    from generators.loading import ModelNotInstalledError
    from pipeline.bench import recommend, run_mode, sample_jobs
    from pipeline.runtime import Runtime

    ctx = CliContext.from_env(generates=True)
    if png is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--png needs matplotlib, which is not installed (pip install matplotlib)")
    if png is not None and not png.expanduser().parent.is_dir():
        raise click.BadParameter(f"folder {png.parent} does not exist", param_hint="--png")
    jobs = sample_jobs(read_batch(file), sample)
    messages = console(stderr=True)
    runtime = Runtime(ctx.settings)
    with messages.status(f"loading model {ctx.settings.model} ..."):
        try:
            runtime.planner
            if "hybrid" in modes:  # loaded before the clock starts, as a worker has them loaded
                runtime.refiner
        except ModelNotInstalledError as e:
            raise click.ClickException(str(e)) from None
    with tempfile.TemporaryDirectory(prefix="hybridgen-bench-") as tmp:
        scratch = _scratch_sessions(Path(tmp))
        if warmup:
            first_of_kind = sample_jobs(jobs, len({j.kind for j in jobs.jobs}))
            with ItemProgress(messages, len(first_of_kind.jobs) * len(modes),
                              interval_s=ctx.settings.progress_interval_s, quiet=quiet, label="warm-up") as progress:
                for mode in modes:
                    run_mode(mode, first_of_kind, runtime, scratch, name="warm-up",
                             on_item=lambda *_: progress.advance(), on_rows=progress.rows_finished)
        sessions = ctx.sessions() if keep else scratch
        results: dict[str, dict[str, Any]] = {}
        with ItemProgress(messages, len(jobs.jobs) * len(modes), interval_s=ctx.settings.progress_interval_s,
                          quiet=quiet, label=f"mode {modes[0]}") as progress:
            for mode in modes:
                progress.describe(f"mode {mode}")
                results[mode] = run_mode(mode, jobs, runtime, sessions, name=file.name,
                                         on_item=lambda *_: progress.advance(), on_rows=progress.rows_finished)
        get_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}").dispose()
    mode, why = recommend(results)
    report = {"file": str(file), "sample": len(jobs.jobs), "model": ctx.settings.model, "kept": keep,
              "modes": results, "recommended": mode, "why": why}
    if as_json:
        click.echo(json.dumps(report, separators=(",", ":")))
    else:
        out = console()
        out.print(bench_table(report))
        out.print(f"recommended: {mode}: {why}")
        if keep:
            out.print("kept as batches " + ", ".join(str(r["batch_id"]) for r in results.values())
                      + " (see `hybridgen status BATCH`)")
    if png is not None:
        plot(report, png.expanduser())
        messages.print(f"chart: {png}")


def _scratch_sessions(folder: Path):
    """A migrated SQLite database in `folder`: the runs that must leave the main database alone."""
    url = f"sqlite:///{folder / 'bench.sqlite'}"
    runner.upgrade(url)
    return session_factory(url)


def bench_table(report: dict[str, Any]) -> Table:
    """Metrics as rows, modes as columns."""
    results = report["modes"]
    modes = list(results)
    table = Table(title=f"bench: {plural(report['sample'], 'job')} of {report['file']} per mode, "
                        f"model {report['model']}", title_justify="left")
    table.add_column("metric")
    for mode in modes:
        table.add_column(mode + (" *" if mode == report["recommended"] else ""), justify="right")

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row("items", [str(results[m]["items"]) for m in modes])
    row("wall seconds", [f"{results[m]['seconds']:.1f}" for m in modes])
    row("items per hour", [f"{results[m]['items_per_hour']:.0f}" for m in modes])
    row("validated items per hour", [f"{results[m]['validated_items_per_hour']:.0f}" for m in modes])
    row("pass rate", [f"{results[m]['pass_rate']:.0%}" for m in modes])
    for kind in sorted({k for r in results.values() for k in r["pass_rate_by_kind"]}):
        row(f"  pass rate {kind}", [_rate(results[m]["pass_rate_by_kind"].get(kind)) for m in modes])
    row("tokens per forward", [f"{results[m]['tokens_per_forward']:.2f}" for m in modes])
    for stage in sorted({s for r in results.values() for s in r["stage_seconds"]}):
        row(f"  seconds in {stage}", [f"{results[m]['stage_seconds'].get(stage, 0.0):.1f}" for m in modes])
    row("tokens per 1000 items", [f"{results[m]['tokens_per_1000_items']:,}" for m in modes])
    row("seconds per 1000 items", [f"{results[m]['seconds_per_1000_items']:,.0f}" for m in modes])
    row("items in error", [str(results[m]["errors"]) for m in modes])
    return table


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def plot(report: dict[str, Any], path: Path) -> None:
    """Validated items per hour and pass rate per kind, side by side for each mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["modes"]
    modes = list(results)
    kinds = sorted({k for r in results.values() for k in r["pass_rate_by_kind"]})
    fig, (speed, quality) = plt.subplots(1, 2, figsize=(10, 4))
    speed.bar(modes, [results[m]["items_per_hour"] for m in modes], color="#ccc", label="all items")
    speed.bar(modes, [results[m]["validated_items_per_hour"] for m in modes], color="#2a7", label="validated")
    speed.set_ylim(bottom=0)
    speed.set_title("items per hour")
    speed.legend()
    width = 0.8 / max(1, len(modes))
    for index, mode in enumerate(modes):
        quality.bar([k + index * width for k in range(len(kinds))],
                    [results[mode]["pass_rate_by_kind"].get(kind, 0.0) for kind in kinds], width, label=mode)
    quality.set_xticks([k + width * (len(modes) - 1) / 2 for k in range(len(kinds))], kinds)
    quality.set_ylim(0, 1)
    quality.set_title("pass rate per kind")
    quality.legend()
    fig.suptitle(f"{report['sample']} jobs of {Path(report['file']).name}, model {report['model']}; "
                 f"recommended: {report['recommended']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
