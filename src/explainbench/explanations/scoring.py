"""Stage `score_explanations`: score one run's explanations against the human references.

Reads the explanations file of one dataset/explainer/shots/seed and the split file with the
human references, checks that they describe the same examples, and writes

- ``per_example.csv``: ``id`` + bleu, rouge1, rouge2, rougeL, bertscore_p, bertscore_r,
  bertscore_f1, geval (+ geval_<criterion>); a metric whose model is not configured is left out;
- ``corpus.csv`` (tidy): ``dataset,explainer,shots,seed,metric,value,ci_low,ci_high,n`` with
  corpus BLEU, the means of the per-example metrics, and MAUVE, each with a bootstrap 95% interval.

The engines run one after another (BERTScore, MAUVE features, the G-Eval judge), each freed
before the next starts.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import metrics
from ..errors import DataError
from ..io import read_jsonl_objects

log = logging.getLogger(__name__)

CORPUS_COLUMNS = ["dataset", "explainer", "shots", "seed", "metric", "value", "ci_low", "ci_high", "n"]


def _read_rows(path: str | Path) -> list[tuple[int, dict]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    rows = read_jsonl_objects(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def load_pairs(explanations_path: str | Path, references_path: str | Path) -> tuple[list[dict], list[str], list[list[str]]]:
    """The reference records, explanations and human references of the same examples, in the
    explanations file's order. Any mismatch raises :class:`DataError` naming file, row and field."""
    refs_by_id: dict[str, tuple[int, dict]] = {}
    for lineno, rec in _read_rows(references_path):
        rid = rec.get("id")
        if not isinstance(rid, str) or not rid:
            raise DataError(f"{references_path}, row {lineno}, field 'id': missing or empty id")
        if rid in refs_by_id:
            raise DataError(f"{references_path}, row {lineno}, field 'id': duplicate id {rid!r} "
                            f"(first at row {refs_by_id[rid][0]})")
        expl = rec.get("explanations")
        if not isinstance(expl, list) or not [e for e in expl if isinstance(e, str) and e.strip()]:
            raise DataError(f"{references_path}, row {lineno}, field 'explanations': no human reference explanation "
                            f"for id {rid!r}; explanation quality needs at least one")
        refs_by_id[rid] = (lineno, rec)

    records, hyps, refs, seen = [], [], [], {}
    for lineno, row in _read_rows(explanations_path):
        rid = row.get("id")
        if not isinstance(rid, str) or not rid:
            raise DataError(f"{explanations_path}, row {lineno}, field 'id': missing or empty id")
        if rid in seen:
            raise DataError(f"{explanations_path}, row {lineno}, field 'id': duplicate id {rid!r} (first at row {seen[rid]})")
        seen[rid] = lineno
        if rid not in refs_by_id:
            raise DataError(f"{explanations_path}, row {lineno}, field 'id': id {rid!r} is not in the references "
                            f"file {references_path}")
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{explanations_path}, row {lineno}, field 'text': missing or empty explanation for id {rid!r}")
        rec = refs_by_id[rid][1]
        records.append(rec)
        hyps.append(" ".join(text.split()))
        refs.append([" ".join(e.split()) for e in rec["explanations"] if isinstance(e, str) and e.strip()])
    missing = [(n, rid) for rid, (n, _) in refs_by_id.items() if rid not in seen]
    if missing:
        n, rid = min(missing)
        raise DataError(f"{references_path}, row {n}, field 'id': id {rid!r} has no explanation in {explanations_path} "
                        f"({len(missing)} of {len(refs_by_id)} ids missing)")
    return records, hyps, refs


def score_explanations(explanations_path: str | Path, references_path: str | Path, *, quality: dict,
                       dataset: str, explainer: str, shots: int, seed: int,
                       judge_spec: dict | None = None, bertscore_spec: dict | None = None,
                       mauve_spec: dict | None = None, prompts_dir: str | Path = "config/prompts",
                       task: str = "nli", labels: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one explanations file; returns (per_example, corpus) tables.

    ``quality`` is the config's ``quality`` section (schema defaults filled in); the model
    specs are the config entries of the models it names (None skips that metric).
    """
    records, hyps, refs = load_pairs(explanations_path, references_path)
    n_boot = int(quality.get("bootstrap", 1000))
    log.info("%s/%s/%dshot/seed%d: %d explanations, %.2f references each", dataset, explainer, shots, seed,
             len(hyps), float(np.mean([len(r) for r in refs])))

    per: dict[str, np.ndarray] = {"bleu": metrics.bleu_sentence(hyps, refs)}
    per.update(metrics.rouge(hyps, refs, use_stemmer=bool(quality.get("rouge", {}).get("use_stemmer", True))))
    corpus: dict[str, dict] = {"bleu": metrics.bleu_corpus(hyps, refs, n_boot=n_boot)}
    log.info("corpus BLEU %.2f", corpus["bleu"]["value"])

    bs_cfg = quality.get("bertscore", {})
    if bertscore_spec:
        per.update(metrics.bertscore(hyps, refs, bertscore_spec["path"], bs_cfg.get("num_layers"),
                                     batch_size=int(bs_cfg.get("batch_size", 64))))
        log.info("BERTScore F1 %.4f", float(per["bertscore_f1"].mean()))

    mv_cfg = quality.get("mauve", {})
    if mauve_spec:
        from ..engines import load_backend

        encoder = load_backend(mauve_spec, name=mv_cfg.get("model") or "mauve")
        try:
            pooling = mv_cfg.get("pooling", "mean")
            human = metrics.embed_features(mauve_spec, [r[0] for r in refs], pooling, backend=encoder)
            model = metrics.embed_features(mauve_spec, hyps, pooling, backend=encoder)
        finally:
            encoder.close()
        corpus["mauve"] = metrics.mauve_corpus(human, model, n_boot=n_boot,
                                               num_buckets=mv_cfg.get("num_buckets", "auto"),
                                               scaling_factor=float(mv_cfg.get("scaling_factor", 5.0)))
        log.info("MAUVE %.4f", corpus["mauve"]["value"])

    if judge_spec:
        from ..engines import load_backend
        from .geval import geval_scores, load_geval_template

        template = load_geval_template(str(prompts_dir), dataset, task)
        judge = load_backend(judge_spec, name=quality.get("judge") or "judge")
        try:
            per.update(geval_scores(judge, template, records, hyps,
                                    criteria=(quality.get("geval") or {}).get("criteria"), labels=labels))
        finally:
            judge.close()
        log.info("G-Eval %.3f", float(np.nanmean(per["geval"])))

    per_example = pd.DataFrame({"id": [r["id"] for r in records], **per})
    for name, values in per.items():
        if name != "bleu":  # corpus BLEU is not the mean of sentence BLEU
            corpus[name] = metrics.summary(values, n_boot=n_boot)
    order = ["bleu", "rouge1", "rouge2", "rougeL", *metrics.BERTSCORE_KEYS, "mauve", "geval"]
    names = [m for m in order if m in corpus] + sorted(m for m in corpus if m not in order)
    rows = [{"dataset": dataset, "explainer": explainer, "shots": int(shots), "seed": int(seed), "metric": m,
             **{k: corpus[m][k] for k in ("value", "ci_low", "ci_high", "n")}} for m in names]
    return per_example, pd.DataFrame(rows, columns=CORPUS_COLUMNS)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV atomically (a killed job leaves no half-written file under the final name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
