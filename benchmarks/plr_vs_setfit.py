"""Benchmark: explainbench PLR against SetFit (logistic-regression head, no contrastive fine-tuning).

Same embedding model (all-MiniLM-L6-v2, local folder), same data (SST-2: training sentences from
train.tsv, the fixed test set from dev.tsv), same n-per-class grid and the same hash-seeded draws
(``explainbench.plr.classifier.draw_rows``). Reported side by side: accuracy per n (mean and sd over draws)
and the wall time of the whole grid, as the ratio SetFit / PLR.

- PLR (candidate): the texts are embedded once (explainbench.plr.embed, mean pooling as the
  model was trained), then for every (n, draw) ``PLRClassifier`` standardises the features and
  picks the L2 penalty by stratified CV inside the draw (``explainbench.plr.curve.learning_curve``,
  as rule plr_curve runs it).
- SetFit (baseline): for every (n, draw) ``SetFitModel.fit`` with its default sklearn
  ``LogisticRegression`` head (C=1) and the body frozen (no contrastive pairs, no training of
  the body) - it encodes the drawn training texts, fits the head, and ``predict`` encodes the
  test texts again. That is SetFit's own usage; it keeps no embedding cache.

SetFit is not a dependency of explainbench and must not enter its environment (it would be
free to upgrade torch). Install it into a separate venv that sees the project's packages:

    python -m venv /work/venv-setfit
    echo "$PWD/.venv/lib/python3.11/site-packages" > /work/venv-setfit/lib/python3.11/site-packages/main.pth
    /work/venv-setfit/bin/pip install setfit        # check it keeps torch (here 2.13.0+cpu)

Run (from the repository root):

    /work/venv-setfit/bin/python benchmarks/plr_vs_setfit.py [--data ../shared/data/sst2]
        [--model resources/models/all-MiniLM-L6-v2] [--n 8 32 128] [--draws 5]
        [--train-per-class 300] [--test-per-class 0 (all of dev)]

Writes benchmarks/results/plr_vs_setfit/{per_draw.csv,summary.csv,summary.json} and prints them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from explainbench.config import model_entry, validate_config  # noqa: E402
from explainbench.data import load_records  # noqa: E402
from explainbench.engines import open_backend  # noqa: E402
from explainbench.io import write_csv, write_json  # noqa: E402
from explainbench.plr.classifier import PLRSettings, draw_rows  # noqa: E402
from explainbench.plr.curve import learning_curve  # noqa: E402
from explainbench.plr.embed import EmbedSettings, Embedder, embed_splits  # noqa: E402
from explainbench.splits import sample_per_class  # noqa: E402
from explainbench.workflow import rule_settings  # noqa: E402

LABELS = ["negative", "positive"]


def load_sst2(data: Path, train_per_class: int, test_per_class: int) -> dict[str, list[dict]]:
    train = load_records(data / "train.tsv", format="tsv", labels=LABELS, task="classification",
                         columns={"text": "sentence", "label": "label"}, id_prefix="sst2-train")
    dev = load_records(data / "dev.tsv", format="tsv", labels=LABELS, task="classification",
                       columns={"text": "content", "label": "label"}, id_prefix="sst2-dev")
    test = sample_per_class(dev, test_per_class, "bench") if test_per_class else dev
    return {"train": sample_per_class(train, train_per_class, "bench"), "test": test}


def run_plr(splits, model: Path, grid, draws) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    spec = model_entry(path=str(model), kind="encoder", backend="transformers", dtype="float32", max_model_len=256,
                       batch_size=64)
    # the config's defaults (l2, 5 CV folds, seed 0; mean pooling, plain text for an encoder) with this grid
    config = validate_config({"datasets": {"sst2": {"format": "tsv", "path": "-", "labels": LABELS}},
                              "models": {"minilm": spec}, "plr": {"n_per_class": list(grid), "draws": draws}})
    with open_backend(spec, "minilm") as backend:
        embedder = Embedder(backend, EmbedSettings.for_model(spec, rule_settings(config, "embed")), None, LABELS)
        emb = embed_splits(embedder, splits)
    curve = learning_curve(emb.part("train"), emb.part("test"), PLRSettings.from_settings(config["plr"]), LABELS)
    rows = [{"method": "plr", **{k: row[k] for k in ("n_per_class", "draw", "accuracy", "C")}}
            for row in curve.to_dict("records")]
    return rows, time.perf_counter() - t0


def run_setfit(splits, model: Path, grid, draws) -> tuple[list[dict], float]:
    from setfit import SetFitModel

    t0 = time.perf_counter()
    train, test = splits["train"], splits["test"]
    ids = [r["id"] for r in train]
    labels = np.array([r["label"] for r in train])
    test_texts, test_labels = [r["text"] for r in test], np.array([r["label"] for r in test])
    rows = []
    for n in grid:
        for draw in range(draws):
            idx = draw_rows(ids, labels, n, draw, seed=0)
            sf = SetFitModel.from_pretrained(str(model))  # fresh body + LogisticRegression head
            sf.fit([train[i]["text"] for i in idx], labels[idx].tolist(), num_epochs=1)  # sklearn head: encode + fit
            pred = np.asarray(sf.predict(test_texts, as_numpy=True))
            rows.append({"method": "setfit", "n_per_class": n, "draw": draw,
                         "accuracy": float((pred == test_labels).mean()), "C": 1.0})
    return rows, time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    ap.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "all-MiniLM-L6-v2")
    ap.add_argument("--n", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--test-per-class", type=int, default=0, help="0: all of dev.tsv")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "plr_vs_setfit")
    args = ap.parse_args(argv)
    try:
        import setfit
    except ImportError:
        sys.exit("setfit is not installed in this interpreter; see the install notes at the top of this file")

    splits = load_sst2(args.data, args.train_per_class, args.test_per_class)
    print(f"SST-2: {len(splits['train'])} training sentences, {len(splits['test'])} test sentences; "
          f"n per class {args.n}, {args.draws} draws; model {args.model}; setfit {setfit.__version__}", flush=True)
    setfit_rows, setfit_s = run_setfit(splits, args.model, args.n, args.draws)
    plr_rows, plr_s = run_plr(splits, args.model, args.n, args.draws)
    per_draw = pd.DataFrame(plr_rows + setfit_rows)
    summary = (per_draw.groupby(["n_per_class", "method"])["accuracy"].agg(["mean", "std"]).unstack("method"))
    summary.columns = [f"{m}_accuracy_{s}" for s, m in summary.columns]
    summary = summary.reset_index()
    result = {"plr_seconds": plr_s, "setfit_seconds": setfit_s, "wall_time_ratio_setfit_over_plr": setfit_s / plr_s,
              "n_train": len(splits["train"]), "n_test": len(splits["test"]), "draws": args.draws,
              "n_per_class": args.n, "setfit_version": setfit.__version__, "model": str(args.model)}
    write_csv(per_draw, args.out / "per_draw.csv")
    write_csv(summary, args.out / "summary.csv")
    write_json({**result, "accuracy": summary.to_dict("records")}, args.out / "summary.json")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wall time: PLR {plr_s:.1f} s (embed once + CV per draw), SetFit {setfit_s:.1f} s; "
          f"ratio SetFit/PLR = {setfit_s / plr_s:.2f}")
    return result


if __name__ == "__main__":
    main()
