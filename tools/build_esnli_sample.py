#!/usr/bin/env python3
"""Rebuild resources/esnli/esnli_sample.jsonl, the default config's real data, from e-SNLI.

e-SNLI (Camburu et al., NeurIPS 2018; MIT licence, resources/esnli/LICENSE) is SNLI with three
human explanations per validation pair. The sample is stratified by label: the same number of
pairs from each of entailment / neutral / contradiction, picked by a hash of (seed, pair id)
(explainbench.splits.sample_per_class), so the same source file and seed give the same sample,
byte for byte, on any machine.

    python tools/build_esnli_sample.py                       # from ../shared/data/esnli/dev.jsonl
    python tools/build_esnli_sample.py --source esnli_dev.csv --per-class 100

``--source`` takes either form of the validation split:
- JSONL, one pair a line: {"id", "premise", "hypothesis", "label", "explanations": [...]}
  (this project's copy, ../shared/data/esnli/dev.jsonl, in the dataset's tokenised
  ``preproc1`` text form; the shipped sample was built from it);
- the published CSV, esnli_dev.csv from https://github.com/OanaMariaCamburu/e-SNLI (columns
  pairID, gold_label, Sentence1, Sentence2, Explanation_1..3); ids are then its pairIDs, so
  the pairs picked differ from the shipped sample's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from explainbench.data import load_records  # noqa: E402
from explainbench.io import write_jsonl  # noqa: E402
from explainbench.splits import sample_per_class  # noqa: E402

LABELS = ["entailment", "neutral", "contradiction"]
# The published CSV's columns, as explainbench record fields.
PUBLISHED_CSV = {"id": "pairID", "premise": "Sentence1", "hypothesis": "Sentence2", "label": "gold_label",
                 "explanations": ["Explanation_1", "Explanation_2", "Explanation_3"]}
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "esnli" / "dev.jsonl"
DEFAULT_OUT = ROOT / "resources" / "esnli" / "esnli_sample.jsonl"
PER_CLASS = 100
SEED = 0


def build_sample(source: str | Path, per_class: int = PER_CLASS, seed: int = SEED) -> list[dict]:
    """``per_class`` pairs of each label from an e-SNLI file (JSONL, or the published CSV), sorted by id."""
    source = Path(source)
    if source.suffix == ".csv":
        records = load_records(source, format="csv", labels=LABELS, columns=PUBLISHED_CSV)
    else:
        records = load_records(source, format="esnli", labels=LABELS)
    picked = sample_per_class(records, per_class, seed)
    short = {label: sum(r["label"] == label for r in picked) for label in LABELS}
    if min(short.values()) < per_class:
        raise SystemExit(f"{source}: fewer than {per_class} pairs for some label: {short}")
    fields = ("id", "premise", "hypothesis", "label", "explanations")
    return [{k: r[k] for k in fields} for r in sorted(picked, key=lambda r: _id_order(r["id"]))]


def _id_order(item_id: str) -> tuple:
    """Numeric ids in numeric order (esnli-dev-2 before esnli-dev-10)."""
    head, _, tail = item_id.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (item_id, -1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="e-SNLI validation split (JSONL or CSV)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    sample = build_sample(args.source, args.per_class, args.seed)
    write_jsonl(sample, args.out)
    print(f"wrote {len(sample)} pairs ({args.per_class} per label, seed {args.seed}) from {args.source} to {args.out}")


if __name__ == "__main__":
    main()
