"""Choosing items of a batch on the command line: --validator, shared by `items` and `requeue`."""

from __future__ import annotations

import difflib

import click


def _check_validator(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A report name, or one run on a field (`degeneration[description]`); a typo gets the nearest name."""
    from pipeline.validation import REPORT_NAMES  # the validators' modules: only when a name is given

    names = (*REPORT_NAMES, "retries")  # besides the validators: the sampled retries' summary report
    if value is None or value.split("[")[0] in names:
        return value
    near = difflib.get_close_matches(value, names, n=1)
    hint = f"did you mean {near[0]}?" if near else f"expected one of {', '.join(names)}"
    raise click.BadParameter(f"{value!r} is no validator; {hint}")


def validator_option(help: str):
    return click.option("--validator", default=None, callback=_check_validator, metavar="NAME", help=help)
