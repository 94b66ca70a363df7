"""Stage `score_explanations`: score one run's explanations against the human references.

Reads the explanations file of one dataset/explainer/shots/seed and the split file with the
human references, checks that they describe the same examples, and writes

- ``per_example.csv``: ``id`` + bleu, rouge1, rouge2, rougeL, bertscore_p, bertscore_r,
  bertscore_f1, geval (+ geval_<criterion>); a metric whose model is not configured is left out;
- ``corpus.csv`` (tidy): ``dataset,explainer,shots,seed,metric,value,ci_low,ci_high,n`` with
  corpus BLEU, the means of the per-example metrics, and MAUVE, each with a bootstrap 95% interval.

The engines run one after another (BERTScore, MAUVE features, the G-Eval judge), each freed
before the next starts. What each has computed is checkpointed beside the outputs until both
are written (:mod:`explainbench.engines.checkpoint`): a job that dies in G-Eval does not
compute BERTScore or the MAUVE features again.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import result_keys
from ..engines import open_backend
from ..engines.checkpoint import Checkpoint, job_checkpoint
from ..errors import DataError
from ..files import CORPUS_COLUMNS, read_explanation_rows, read_jsonl_rows, write_corpus
from ..io import write_csv
from . import metrics
from .geval import geval_scores, load_geval_template

log = logging.getLogger(__name__)


def load_pairs(explanations_path: str | Path, references_path: str | Path) -> tuple[list[dict], list[str], list[list[str]]]:
    """The reference records, explanations and human references of the same examples, in the
    explanations file's order. Any mismatch raises :class:`DataError` naming file, row and field."""
    refs_by_id: dict[str, tuple[int, dict]] = {}
    for lineno, rec in read_jsonl_rows(references_path):
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

    records, hyps, refs, seen = [], [], [], set()
    for lineno, row in read_explanation_rows(explanations_path):  # unique ids, non-empty texts
        rid = row["id"]
        seen.add(rid)
        if rid not in refs_by_id:
            raise DataError(f"{explanations_path}, row {lineno}, field 'id': id {rid!r} is not in the references "
                            f"file {references_path}")
        rec = refs_by_id[rid][1]
        records.append(rec)
        hyps.append(" ".join(row["text"].split()))
        refs.append([" ".join(e.split()) for e in rec["explanations"] if isinstance(e, str) and e.strip()])
    missing = [(n, rid) for rid, (n, _) in refs_by_id.items() if rid not in seen]
    if missing:
        n, rid = min(missing)
        raise DataError(f"{references_path}, row {n}, field 'id': id {rid!r} has no explanation in {explanations_path} "
                        f"({len(missing)} of {len(refs_by_id)} ids missing)")
    return records, hyps, refs


def score_explanations(records: Sequence[dict], hyps: Sequence[str], refs: Sequence[Sequence[str]],
                       config: dict, dataset: str, checkpoint: Checkpoint | None = None
                       ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Score explanations ``hyps`` of ``records`` against their human references ``refs``.

    ``config`` is the validated config: its ``quality`` section says which metrics run and with
    which models (a metric whose model is null is skipped). Returns the per-example scores
    (metric -> one value per example) and the corpus figures (metric -> value, interval, n).
    The engines run one after another (BERTScore, MAUVE features, the G-Eval judge), each freed
    before the next starts. With a ``checkpoint``, each engine's answers are kept there (and
    read from there on a second try).
    """
    quality, models = config["quality"], config["models"]
    checkpoint = checkpoint or Checkpoint(None)
    bootstrap = quality["bootstrap"]
    per: dict[str, np.ndarray] = {"bleu": metrics.bleu_sentence(hyps, refs)}
    per.update(metrics.rouge(hyps, refs, use_stemmer=quality["rouge"]["use_stemmer"]))
    corpus: dict[str, dict] = {"bleu": metrics.bleu_corpus(hyps, refs, bootstrap=bootstrap)}
    log.info("corpus BLEU %.2f", corpus["bleu"]["value"])

    bs = quality["bertscore"]
    if bs["model"]:
        spec = models[bs["model"]]
        per.update(checkpoint.section("bertscore", [result_keys(spec, "models.*"), bs["num_layers"], hyps, refs],
                                      lambda: metrics.bertscore(hyps, refs, spec["path"], bs["num_layers"],
                                                                batch_size=bs["batch_size"])))
        log.info("BERTScore F1 %.4f", float(per["bertscore_f1"].mean()))

    mv = quality["mauve"]
    if mv["model"]:
        with open_backend(models[mv["model"]], mv["model"]) as engine:
            encoder = checkpoint.wrap(engine)
            human = metrics.embed_features(encoder, [r[0] for r in refs], mv["pooling"])
            model = metrics.embed_features(encoder, hyps, mv["pooling"])
        corpus["mauve"] = metrics.mauve_corpus(human, model, bootstrap=bootstrap, num_buckets=mv["num_buckets"],
                                               scaling_factor=float(mv["scaling_factor"]))
        log.info("MAUVE %.4f", corpus["mauve"]["value"])

    if quality["judge"]:
        spec = config["datasets"][dataset]
        template = load_geval_template(config["prompts_dir"], dataset, spec["task"])
        with open_backend(models[quality["judge"]], quality["judge"]) as engine:
            judge = checkpoint.wrap(engine)
            per.update(geval_scores(judge, template, records, hyps, criteria=quality["geval"]["criteria"],
                                    labels=spec["labels"]))
        log.info("G-Eval %.3f", float(np.nanmean(per["geval"])))

    for name, values in per.items():
        if name != "bleu":  # corpus BLEU is not the mean of sentence BLEU
            corpus[name] = metrics.summary(values, bootstrap=bootstrap)
    return per, corpus


def corpus_frame(corpus: dict[str, dict], identity: dict) -> pd.DataFrame:
    """The tidy corpus table: one row per metric, in the report's order, with the run's identity
    (dataset, explainer, shots, seed) in every row."""
    order = ["bleu", "rouge1", "rouge2", "rougeL", *metrics.BERTSCORE_KEYS, "mauve", "geval"]
    names = [m for m in order if m in corpus] + sorted(m for m in corpus if m not in order)
    rows = [{**identity, "metric": m, **{k: corpus[m][k] for k in ("value", "ci_low", "ci_high", "n")}}
            for m in names]
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


def run(job) -> pd.DataFrame:
    """Rule ``score_explanations``: one explainer x shots x seed's test explanations, scored."""
    records, hyps, refs = load_pairs(job.input["explanations"], job.input["references"])
    identity = {"dataset": job.dataset, "explainer": job.model, "shots": job.wildcard_int("shots"),
                "seed": job.wildcard_int("seed")}
    log.info("%s/%s/%dshot/seed%d: %d explanations, %.2f references each", job.dataset, job.model,
             identity["shots"], identity["seed"], len(hyps), float(np.mean([len(r) for r in refs])))
    with job_checkpoint(job.output["per_example"]) as checkpoint:
        per, corpus = score_explanations(records, hyps, refs, job.config, job.dataset, checkpoint)
        write_csv(pd.DataFrame({"id": [r["id"] for r in records], **per}), job.output["per_example"])
        table = corpus_frame(corpus, identity)
        write_corpus(table, job.output["corpus"])
    log.info("wrote %s\n%s", job.output["corpus"], table.to_string(index=False))
    return table
