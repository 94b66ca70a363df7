"""Study 2, what quantisation costs and buys: one row per dataset x quantised llama.cpp model, with
the file (its size, the type asked for and the type most of its weights actually got, from rule
``quantize``'s JSON), the PLR accuracy at each n per class (mean over draws, from ``curve.csv``),
the model's own zero-shot accuracy (``metrics.json``) and its generation tokens per second
(rule ``generation_speed``: all models timed in one job on the same prompts). Rule
``quantization_table`` writes ``results/tables/quantization.{csv,md,html}``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..files import read_curve, read_metrics
from ..provenance import config_hash
from .render import Document, fmt, write_report

log = logging.getLogger("explainbench.report")

INTRO = ("Each quantised llama.cpp model: its GGUF file (the type asked for, and the type that holds most of "
         "its weights: llama.cpp falls back to other types where a tensor's rows do not fit a type's blocks), "
         "the PLR accuracy on its embeddings at each n per class (mean over draws), its zero-shot accuracy, and "
         "its generation speed, measured for all models in one job on the same prompts.")


def accuracy_column(n: int) -> str:
    return f"plr_accuracy_n{n}"


def accuracy_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's :func:`accuracy_column` columns, by ascending n."""
    return sorted((c for c in frame.columns if c.startswith("plr_accuracy_n")), key=lambda c: int(c[14:]))


def _read_infos(paths: Sequence[str | Path]) -> dict[str, dict]:
    out = {}
    for path in paths:
        info = json.loads(Path(path).read_text())
        out[info["model"]] = {**info, "info_source": str(path)}
    return out


def quantization_table(info_paths: Sequence[str | Path], curve_paths: Sequence[str | Path],
                       zeroshot_paths: Sequence[str | Path], speed_paths: Sequence[str | Path],
                       config: dict) -> pd.DataFrame:
    """The table's rows (see the module docstring), one per dataset x model of the curves."""
    infos = _read_infos(info_paths)
    zeroshot = {(m["dataset"], m["classifier"]): float(m["accuracy"]) for m in map(read_metrics, zeroshot_paths)}
    speed = pd.concat([pd.read_csv(p, dtype={"dataset": str, "model": str}) for p in speed_paths]) if speed_paths \
        else pd.DataFrame(columns=["dataset", "model", "tokens_per_s"])
    speeds = {(r.dataset, r.model): float(r.tokens_per_s) for r in speed.itertuples()}
    rows = []
    for path in curve_paths:
        curve = read_curve(path)
        dataset, model = curve["dataset"].iloc[0], curve["model"].iloc[0]
        info = infos.get(model, {})
        row = {"dataset": dataset, "model": model, "quantization": info.get("requested"),
               "dominant_type": info.get("dominant_type"),
               "dominant_share": info.get("types", {}).get(info.get("dominant_type"), {}).get("share"),
               "size_mb": info["size_bytes"] / 1e6 if info else None,
               "zeroshot_accuracy": zeroshot.get((dataset, model)), "tokens_per_s": speeds.get((dataset, model))}
        means = curve.groupby("n_per_class")["accuracy"].mean()
        row.update({accuracy_column(int(n)): float(acc) for n, acc in means.items()})
        row.update(config_hash=config_hash(config), model_path=config["models"][model]["path"],
                   seed=config["plr"]["seed"], source=str(path))
        rows.append(row)
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame) -> list[str]:
    """In words: per dataset, the fastest and the most accurate (largest n) quantisation, and every
    file whose weights are mostly of another type than the one asked for."""
    out = []
    n_cols = accuracy_columns(table)
    for dataset, group in table.groupby("dataset", sort=False):
        if group["tokens_per_s"].notna().any():
            fast = group.loc[group["tokens_per_s"].idxmax()]
            out.append(f"{dataset}: fastest is {fast['model']} ({fast['quantization']}, "
                       f"{fmt(fast['tokens_per_s'], 1)} tokens/s, {fmt(fast['size_mb'], 1)} MB).")
        if n_cols and group[n_cols[-1]].notna().any():
            best = group.loc[group[n_cols[-1]].idxmax()]
            out.append(f"{dataset}: at {n_cols[-1][14:]} per class the best PLR accuracy is {best['model']}'s "
                       f"({best['quantization']}): {fmt(best[n_cols[-1]])}.")
    for row in table.itertuples():
        if row.quantization and row.dominant_type and row.dominant_type.lower() != str(row.quantization).lower():
            out.append(f"{row.model}: asked for {row.quantization}, but most of its weights are "
                       f"{row.dominant_type} ({fmt(row.dominant_share)} of them); read its rows as {row.dominant_type}.")
    return out


def run(job) -> pd.DataFrame:
    """Rule ``quantization_table``."""
    table = quantization_table(job.input["info"], job.input["curves"], job.input["zeroshot"], job.input["speed"],
                               job.config)
    display = table.drop(columns=["config_hash", "model_path", "seed", "source"], errors="ignore")
    document = Document("Quantisation: size, accuracy and speed", INTRO, findings(table) if not table.empty else [],
                        [("Models", display)])
    write_report(table, document, job.output["csv"], job.output["md"], job.output.get("html"))
    log.info("wrote %s (%d rows)", job.output["csv"], len(table))
    return table
