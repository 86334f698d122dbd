"""How commands answer: rich tables for people, JSON for pipelines, progress on stderr.

With ``--json`` stdout carries only JSON (one document, or one object per line for row
output) and everything for people (progress bars, notes) goes to stderr, so that
``odconnect ... --json | jq`` always parses. ``--quiet`` turns the stderr output off.
"""
from __future__ import annotations

import csv
import json
import sys
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


PIPE_WIDTH = 160


def to_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json = json_mode
        self.quiet = quiet
        # a table piped to a file or a pager keeps its rows on one line each
        self.stdout = Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)
        self.stderr = Console(stderr=True, highlight=False)

    # --- results (stdout) -----------------------------------------------------------------
    def result(self, data: Any, human: Callable[[], None]) -> None:
        """The command's answer: `data` as JSON with --json, else what `human` prints."""
        if self.json:
            sys.stdout.write(to_json(data) + "\n")
            sys.stdout.flush()
        else:
            human()

    def json_line(self, row: dict) -> None:
        sys.stdout.write(to_json(row) + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
              caption: str | None = None) -> None:
        table = Table(title=Text(title) if title else None, caption=Text(caption) if caption else None,
                      title_justify="left", caption_justify="left")
        for name in columns:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell(v)) for v in row))  # names are text, never markup
        self.stdout.print(table)

    def line(self, text: str) -> None:
        """A sentence of the answer, for people (stdout without --json)."""
        self.stdout.print(text, markup=False, soft_wrap=True)

    # --- for people, beside the answer (stderr) ------------------------------------------------
    def note(self, text: str) -> None:
        if not self.quiet:
            self.stderr.print(text, markup=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.stderr.print(f"odconnect: error: {text}", markup=False, style="bold red", soft_wrap=True)

    def progress(self, *extra_columns, unit_total: bool = True) -> Progress:
        """A progress bar on stderr (off with --quiet); rich draws it live only on a terminal."""
        columns = [TextColumn("[progress.description]{task.description}"), BarColumn()]
        if unit_total:
            columns.append(MofNCompleteColumn())
        columns.extend(extra_columns or (TimeElapsedColumn(),))
        return Progress(*columns, console=self.stderr, disable=self.quiet)


def cell(value: Any) -> str:
    """One table cell: numbers rounded for reading, nothing shown as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def when(iso: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) as a table reads it: 2026-11-25 14:00."""
    return f"{iso[:10]} {iso[11:16]}" if iso else ""


def clock(seconds: float | None) -> str:
    """A duration as m:ss (or 1h05)."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def percent(value: float | None) -> str:
    """A 0..1 metric as a percentage, the way the performance score reads."""
    return "" if value is None else f"{value * 100:.1f}"


def write_csv(fh, columns: Sequence[str], rows: Iterable[dict]) -> None:
    writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
