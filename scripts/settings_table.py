"""Rewrite the README's configuration table from pipeline.settings (run after adding a setting).

    .venv/bin/python scripts/settings_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.settings import documented_settings  # noqa: E402

HEADER = "| variable | default | meaning |"


def render() -> str:
    rows = [HEADER, "|---|---|---|"]
    rows += [f"| `{name}` | {default} | {help_} |" for name, default, help_ in documented_settings()]
    return "\n".join(rows)


def main() -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    lines = readme.read_text().split("\n")
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[start:end] = render().split("\n")
    readme.write_text("\n".join(lines))
    print(f"updated {readme} ({len(documented_settings())} settings)")


if __name__ == "__main__":
    main()
