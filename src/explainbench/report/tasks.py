"""Study 2 over many tasks: the cross-task summary of the PLR table. Rule ``plr_task_summary``.

Per task (dataset) x embedding model: each zero-shot baseline's accuracy, the PLR mean accuracy at
each n per class and the smallest n per class at which it reaches each baseline. Over the tasks,
per embedding model: the mean PLR accuracy at each n (over the tasks whose training split holds that
n), the mean zero-shot accuracy of each baseline, and on how many tasks PLR reaches each baseline
(within the grid). Read from ``results/tables/plr_learning_curves.csv``, so the summary always says
what the PLR table says.
"""
from __future__ import annotations

import logging

import pandas as pd

from .learning_curves import reach_column, zeroshot_column, zeroshot_llms
from .quantization import accuracy_column, accuracy_columns
from .render import Document, fmt, read_table, write_report

log = logging.getLogger("explainbench.report")

INTRO = ("Each task's PLR learning curve in one row (mean accuracy over draws at each n per class), with each "
         "LLM's zero-shot accuracy on that task and the smallest n per class at which PLR reaches it; then, per "
         "embedding model, the mean over tasks and on how many tasks PLR reaches each LLM within the grid.")


def tasks_reaching_column(llm: str) -> str:
    return f"tasks_reaching_{llm}"


def per_task(plr: pd.DataFrame) -> pd.DataFrame:
    """One row per task x embedding model (see the module docstring)."""
    llms = zeroshot_llms(plr)
    rows = []
    for (dataset, model), group in plr.groupby(["dataset", "model"], sort=True):
        row = {"dataset": dataset, "model": model}
        for llm in llms:
            row[zeroshot_column(llm)] = group[zeroshot_column(llm)].iloc[0]
        row.update({accuracy_column(int(r.n_per_class)): float(r.accuracy_mean) for r in group.itertuples()})
        for llm in llms:
            row[reach_column(llm)] = group[reach_column(llm)].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["dataset", "model"])
    order = (["dataset", "model"] + [zeroshot_column(llm) for llm in llms] + accuracy_columns(out)
             + [reach_column(llm) for llm in llms])
    out = out.reindex(columns=order)
    for llm in llms:
        out[reach_column(llm)] = out[reach_column(llm)].astype("Int64")
    return out


def over_tasks(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per embedding model: ``n_tasks``, the mean of every accuracy column over the tasks that have it,
    and per LLM ``tasks_reaching_<llm>`` (tasks where PLR reaches it) of ``tasks_with_<llm>`` (tasks
    with a zero-shot accuracy of that LLM)."""
    llms = zeroshot_llms(tasks)
    rows = []
    for model, group in tasks.groupby("model", sort=True):
        row = {"model": model, "n_tasks": len(group)}
        for column in [zeroshot_column(llm) for llm in llms] + accuracy_columns(tasks):
            row[column] = group[column].mean() if group[column].notna().any() else float("nan")
        for llm in llms:
            with_ref = group[group[zeroshot_column(llm)].notna()]
            row[tasks_reaching_column(llm)] = int(with_ref[reach_column(llm)].notna().sum())
            row[f"tasks_with_{llm}"] = len(with_ref)
        rows.append(row)
    return pd.DataFrame(rows)


def findings(tasks: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    out = []
    n_cols = accuracy_columns(tasks)
    for row in summary.to_dict("records"):  # column names hold model names (hyphens): no itertuples
        best = max((c for c in n_cols if pd.notna(row.get(c))), key=lambda c: int(c[14:]), default=None)
        if best:
            out.append(f"PLR on {row['model']} over {row['n_tasks']} task(s): mean accuracy {fmt(row[best])} "
                       f"at n = {best[14:]} per class.")
        for llm in zeroshot_llms(tasks):
            if row[f"tasks_with_{llm}"]:
                group = tasks[tasks["model"] == row["model"]]
                reached = group[reach_column(llm)].dropna()
                median = f" (median n {int(reached.median())} per class)" if len(reached) else ""
                out.append(f"PLR on {row['model']} reaches {llm} zero-shot on {row[tasks_reaching_column(llm)]} of "
                           f"{row[f'tasks_with_{llm}']} task(s){median}.")
    return out


def task_summary(plr: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per task x model, over tasks per model) from a PLR table."""
    tasks = per_task(plr)
    return tasks, over_tasks(tasks)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    renamed = {c: f"PLR acc. n={c[14:]}" for c in accuracy_columns(frame)}
    renamed.update({c: f"{c[len('zeroshot_accuracy_'):]} zero-shot acc." for c in frame.columns
                    if c.startswith("zeroshot_accuracy_")})
    renamed.update({c: f"n reaching {c[len('n_per_class_reaching_'):]}" for c in frame.columns
                    if c.startswith("n_per_class_reaching_")})
    return frame.rename(columns=renamed)


def run(job) -> pd.DataFrame:
    """Rule ``plr_task_summary``: the PLR table -> results/tables/plr_tasks.{csv,md,html}."""
    plr = read_table(job.input["table"])
    tasks, summary = task_summary(plr)
    table = pd.concat([tasks.assign(row="task"), summary.assign(row="mean over tasks", dataset="(all tasks)")],
                      ignore_index=True)
    table = table[["row"] + [c for c in table.columns if c != "row"]]
    document = Document("PLR across tasks", INTRO, findings(tasks, summary),
                        [("Per task", _display(tasks)), ("Over tasks (mean; tasks reaching each LLM)", _display(summary))])
    write_report(table, document, job.output["csv"], job.output["md"], job.output.get("html"))
    log.info("cross-task summary: %d task x model rows, %d models -> %s", len(tasks), len(summary), job.output["csv"])
    return table
