"""Stage `score_explanations`: score one run's explanations against the human references.

Reads the explanations file of one dataset/explainer/shots/seed and the examples file with the
human references, takes the test examples of one fold, and writes

- ``per_example.csv``: ``id`` + bleu, rouge1, rouge2, rougeL, bertscore_p, bertscore_r,
  bertscore_f1, geval (+ geval_<criterion>), states_label (1 when the explanation names a
  label); a metric whose model is not configured is left out; an example without a human
  reference has NaN in the reference-based columns;
- ``corpus.csv`` (tidy): ``dataset,fold,explainer,shots,seed,metric,value,ci_low,ci_high,n`` with
  corpus BLEU, the means of the per-example metrics, and MAUVE, each with a bootstrap 95% interval;
  ``n`` of a reference-based metric counts the examples it scored.

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
from ..engines.serve import service_file
from ..errors import DataError
from ..files import CORPUS_COLUMNS, read_explanation_rows, write_corpus
from ..io import write_csv
from . import metrics
from ..prompts import prompt_folder
from .geval import geval_scores, load_geval_template

log = logging.getLogger(__name__)


def load_pairs(explanations_path: str | Path, examples_path: str | Path,
               fold: int) -> tuple[list[dict], list[dict], list[list[str]]]:
    """The test records of ``fold``, their explanation rows and their human references (an empty
    list where a record has none), in the examples file's order. An explanation missing for a
    test record raises :class:`DataError` naming the files, the row and the field."""
    from ..splits import read_fold

    test = read_fold(examples_path, fold)["test"]
    rows_by_id = {row["id"]: (lineno, row) for lineno, row in read_explanation_rows(explanations_path)}
    missing = [r["id"] for r in test if r["id"] not in rows_by_id]
    if missing:
        raise DataError(f"{explanations_path}, field 'id': no explanation for {len(missing)} of the {len(test)} test "
                        f"examples of fold {fold} in {examples_path} (e.g. {missing[:3]})")
    rows = [rows_by_id[r["id"]][1] for r in test]
    refs = [[" ".join(e.split()) for e in r.get("explanations") or [] if isinstance(e, str) and e.strip()]
            for r in test]
    return test, rows, refs


def _scored(refs: Sequence[Sequence[str]]) -> np.ndarray:
    """Indices of the examples that have a human reference (the reference-based metrics score these)."""
    return np.array([i for i, r in enumerate(refs) if r], dtype=int)


def _spread(values: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """Per-example values of the scored examples, NaN for the others."""
    out = np.full(n, np.nan)
    out[keep] = values
    return out


def score_explanations(records: Sequence[dict], hyps: Sequence[str], refs: Sequence[Sequence[str]],
                       config: dict, dataset: str, checkpoint: Checkpoint | None = None
                       ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Score explanations ``hyps`` of ``records`` against their human references ``refs``.

    ``config`` is the validated config: its ``quality`` section says which metrics run and with
    which models (a metric whose model is null is skipped). An example without a reference is
    left out of the reference-based metrics (BLEU, ROUGE, BERTScore, MAUVE: their ``n`` counts
    the scored ones, NaN in the per-example table) and scored by the judge. Returns the
    per-example scores (metric -> one value per example) and the corpus figures (metric ->
    value, interval, n). The engines run one after another (BERTScore, MAUVE features, the
    G-Eval judge), each freed before the next starts. With a ``checkpoint``, each engine's
    answers are kept there (and read from there on a second try). A served judge (``serve: true``)
    is asked through its rule-serve_llm server for ``dataset`` instead of being loaded.
    """
    quality, models = config["quality"], config["models"]
    checkpoint = checkpoint or Checkpoint(None)
    bootstrap, n = quality["bootstrap"], len(hyps)
    keep = _scored(refs)
    if len(keep) < n:
        log.warning("%d of %d examples have no human reference: left out of BLEU, ROUGE, BERTScore and MAUVE "
                    "(counted in n_scored)", n - len(keep), n)
    s_hyps, s_refs = [hyps[i] for i in keep], [list(refs[i]) for i in keep]
    per: dict[str, np.ndarray] = {}
    corpus: dict[str, dict] = {}
    if len(keep):
        per["bleu"] = _spread(metrics.bleu_sentence(s_hyps, s_refs), keep, n)
        per.update({k: _spread(v, keep, n) for k, v in
                    metrics.rouge(s_hyps, s_refs, use_stemmer=quality["rouge"]["use_stemmer"]).items()})
        corpus["bleu"] = metrics.bleu_corpus(s_hyps, s_refs, bootstrap=bootstrap)
        log.info("corpus BLEU %.2f", corpus["bleu"]["value"])

    bs = quality["bertscore"]
    if bs["model"] and len(keep):
        spec = models[bs["model"]]
        scores = checkpoint.section("bertscore", [result_keys(spec, "models.*"), bs["num_layers"], s_hyps, s_refs],
                                    lambda: metrics.bertscore(s_hyps, s_refs, spec["path"], bs["num_layers"],
                                                              batch_size=bs["batch_size"]))
        per.update({k: _spread(v, keep, n) for k, v in scores.items()})
        log.info("BERTScore F1 %.4f", float(np.nanmean(per["bertscore_f1"])))

    mv = quality["mauve"]
    if mv["model"] and len(keep):
        owner = np.array([j for j, group in enumerate(s_refs) for _ in group], dtype=int)
        with open_backend(models[mv["model"]], mv["model"]) as engine:
            encoder = checkpoint.wrap(engine)
            human = metrics.embed_features(encoder, [r for group in s_refs for r in group], mv["pooling"])
            model = metrics.embed_features(encoder, s_hyps, mv["pooling"])
        corpus["mauve"] = metrics.mauve_corpus(human, model, bootstrap=bootstrap, num_buckets=mv["num_buckets"],
                                               scaling_factor=float(mv["scaling_factor"]), p_owner=owner)
        log.info("MAUVE %.4f (%d human references, %d explanations)", corpus["mauve"]["value"], len(human), len(model))

    if quality["judge"]:
        spec = config["datasets"][dataset]
        template = load_geval_template(config["prompts_dir"], prompt_folder(dataset, spec), spec["task"])
        service = service_file(config, quality["judge"], dataset)
        with open_backend(models[quality["judge"]], quality["judge"], service=service) as engine:
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
    (dataset, fold, explainer, shots, seed) in every row."""
    order = ["bleu", "rouge1", "rouge2", "rougeL", *metrics.BERTSCORE_KEYS, "mauve", "geval", "states_label"]
    names = [m for m in order if m in corpus] + sorted(m for m in corpus if m not in order)
    rows = [{**identity, "metric": m, **{k: corpus[m][k] for k in ("value", "ci_low", "ci_high", "n")}}
            for m in names]
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


def run(job) -> pd.DataFrame:
    """Rule ``score_explanations``: one explainer x shots x seed's explanations of fold ``{fold}``'s
    test examples, scored; plus the share of them that name a label (metric ``states_label``)."""
    fold = job.wildcard_int("fold")
    records, rows, refs = load_pairs(job.input["explanations"], job.input["examples"], fold)
    hyps = [" ".join(row["text"].split()) for row in rows]
    identity = {"dataset": job.dataset, "fold": fold, "explainer": job.model, "shots": job.wildcard_int("shots"),
                "seed": job.wildcard_int("seed")}
    log.info("%s/fold%d/%s/%dshot/seed%d: %d explanations, %d with a human reference (%.2f each)", job.dataset, fold,
             job.model, identity["shots"], identity["seed"], len(hyps), sum(1 for r in refs if r),
             float(np.mean([len(r) for r in refs if r] or [0])))
    with job_checkpoint(job.output["per_example"]) as checkpoint:
        per, corpus = score_explanations(records, hyps, refs, job.config, job.dataset, checkpoint)
        flags = np.array([bool(row.get("states_label")) for row in rows], dtype=float)
        per["states_label"] = flags
        corpus["states_label"] = metrics.summary(flags, bootstrap=job.config["quality"]["bootstrap"])
        log.info("%d of %d explanations name a label", int(flags.sum()), len(flags))
        write_csv(pd.DataFrame({"id": [r["id"] for r in records], **per}), job.output["per_example"])
        table = corpus_frame(corpus, identity)
        write_corpus(table, job.output["corpus"])
    log.info("wrote %s\n%s", job.output["corpus"], table.to_string(index=False))
    return table
