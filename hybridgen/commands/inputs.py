"""Reading batch files for `submit` and `run`, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import click

from service.spec import ParsedBatch, SpecError, parse_submission

MAX_FILE_BYTES = 512 * 1024 * 1024


def expand_paths(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; a folder stands for the *.jsonl files in it (sorted)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("*.jsonl"))
            if not found:
                raise click.BadParameter(f"folder {p} holds no .jsonl files", param_hint="FILE")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise click.BadParameter(f"{p} does not exist", param_hint="FILE")
    return files


def read_batch(path: Path) -> ParsedBatch:
    """A JSONL file, or a file holding one JSON array of jobs (as the HTTP API takes them)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise click.ClickException(f"{path}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    try:
        return parse_submission(path.read_bytes(), source=str(path), fmt="auto")
    except SpecError as e:
        raise click.ClickException(str(e)) from None
