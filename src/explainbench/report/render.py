"""Writing the report tables: the CSV for machines, the same content as Markdown (for the
repository) and HTML (for the Snakemake report) for people, and reading a table back.

A :class:`Document` is what a table says to people: a title, an introduction, the findings
in words and the sections (a heading and a display table each). Numbers are shown with three
decimals, intervals as ``value [low, high]`` and missing values as an en dash.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_csv, write_text

MISSING = "–"

# Columns that hold names: read back as text (a model called "NA" is not a missing value).
NAME_COLUMNS = ("dataset", "explainer", "model", "classifier", "method", "condition", "config_hash",
                "model_path", "source", "zeroshot_sources")

_STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:0.85em}"
          "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}")


def _missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x))


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` decimals (integers as they are); missing as an en dash."""
    if _missing(x):
        return MISSING
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def with_ci(value, low, high, digits: int = 3) -> str:
    """``value [low, high]``; the value alone where the interval is missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in (low, high)):
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); NaN shows as an en dash."""
    if df.empty:
        return "_(no rows)_\n"

    def cell(v) -> str:
        if _missing(v):
            return MISSING
        if isinstance(v, (float, np.floating)):
            return fmt(float(v))
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Document:
    """What a report table says to people: title, introduction, findings, (heading, table) sections."""

    title: str
    intro: str
    findings: list[str]
    sections: list[tuple[str, pd.DataFrame]]

    def markdown(self) -> str:
        md = [f"# {self.title}", "", self.intro, ""]
        if self.findings:
            md += ["## Findings", ""] + [f"- {f}" for f in self.findings] + [""]
        for heading, df in self.sections:
            md += [f"## {heading}", "", markdown_table(df)]
        return "\n".join(md)

    def html(self) -> str:
        title = html.escape(self.title)
        parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
                 f"<style>{_STYLE}</style></head><body>", f"<h1>{title}</h1>", f"<p>{html.escape(self.intro)}</p>"]
        if self.findings:
            parts += ["<h2>Findings</h2><ul>"] + [f"<li>{html.escape(f)}</li>" for f in self.findings] + ["</ul>"]
        for heading, df in self.sections:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts.append(df.to_html(index=False, na_rep=MISSING, float_format=lambda v: fmt(v))
                         if not df.empty else "<p>(no rows)</p>")
        parts.append("</body></html>")
        return "\n".join(parts)


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """A report table as CSV (six significant digits)."""
    write_csv(table, path, float_format="%.6g")


def write_report(table: pd.DataFrame, document: Document, csv: str | Path, md: str | Path,
                 html_path: str | Path | None = None) -> None:
    """The table as CSV and its document as Markdown and (if ``html_path`` is given) HTML."""
    write_table(table, csv)
    write_text(document.markdown(), md)
    if html_path is not None:
        write_text(document.html(), html_path)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a report table back: names stay strings; only empty cells are missing."""
    head = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, keep_default_na=False, na_values=[""],
                       dtype={c: str for c in NAME_COLUMNS if c in head})
