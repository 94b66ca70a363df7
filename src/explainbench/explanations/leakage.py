"""Label leakage: does an explanation name the label it explains?

An explainer that sees the gold label may simply state it ("The correct label is 'neutral'"),
and a classifier that reads such an explanation learns the label, not the reasoning. Each
dataset lists the words that name its labels (``datasets.<name>.label_words``, label -> words;
a label left out is named by itself). A word matches case-insensitively at the start of a
word and takes the rest of that word with it, so ``entail`` matches "entails" and
"entailment"; a phrase (``not enough information``) matches with any whitespace between its
words.

- :func:`states_label`: whether a text names any label (every explanation row records it);
- :func:`mask_label_words`: the text with those words removed (condition ``llm-...-masked``).
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

_SPACE = re.compile(r"\s+")


def label_words(labels: Sequence[str], words: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every word that names a label: ``words[label]`` where given, else the label itself."""
    words = dict(words or {})
    out: list[str] = []
    for label in labels:
        out.extend(w for w in (words.get(label) or [label]) if w.strip())
    return list(dict.fromkeys(out))


def label_pattern(words: Sequence[str]) -> re.Pattern | None:
    """One case-insensitive pattern for all ``words`` (longest first), each from a word start to
    the end of that word; None when there are no words."""
    parts = [r"\s+".join(re.escape(p) for p in w.split()) for w in sorted(words, key=len, reverse=True) if w.strip()]
    if not parts:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(parts) + r")\w*", re.IGNORECASE)


def states_label(text: str, words: Sequence[str]) -> bool:
    """Whether ``text`` contains a word that names a label."""
    pattern = label_pattern(words)
    return bool(pattern and pattern.search(text or ""))


def mask_label_words(text: str, words: Sequence[str]) -> str:
    """``text`` with every label word removed (and the whitespace left behind collapsed)."""
    pattern = label_pattern(words)
    if not pattern:
        return text
    return _SPACE.sub(" ", pattern.sub("", text or "")).strip()


def dataset_label_words(spec: dict) -> list[str]:
    """The label words of a validated dataset entry (``labels`` and ``label_words``)."""
    return label_words(spec["labels"], spec["label_words"])
