"""Label leakage: which explanations name a label, and the masked text, on hand-made cases and on
the Dhaini et al. study's own published e-SNLI explanations (../shared/data/dhaini)."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import shared_file
from explainbench.config import dataset_entry
from explainbench.explanations.leakage import dataset_label_words, label_words, mask_label_words, states_label

ESNLI_WORDS = {"entailment": ["entail"], "neutral": ["neutral"], "contradiction": ["contradict"]}
WORDS = label_words(["entailment", "neutral", "contradiction"], ESNLI_WORDS)


@pytest.mark.parametrize("text, named", [
    ("The correct label is 'neutral'.", True),
    ("The premise entails the hypothesis.", True),          # a word that begins with a label word
    ("This is a CONTRADICTION of the claim.", True),        # any case
    ("A dog is an animal, so the dog runs.", False),
    ("The man is disentangled from the rope.", False),     # 'entail' inside a word is not a label word
    ("", False),
])
def test_states_label(text, named):
    assert states_label(text, WORDS) is named


def test_mask_label_words_removes_whole_words_and_phrases():
    assert mask_label_words("The premise entails it; not entailment but neutrality.", WORDS) == \
        "The premise it; not but ."
    words = label_words(["supported", "not enough information", "refuted"],
                        {"not enough information": ["not enough information"]})
    assert words == ["supported", "not enough information", "refuted"]        # a label left out names itself
    assert mask_label_words("There is not  enough\ninformation; the claim is Refuted.", words) == \
        "There is ; the claim is ."
    assert not states_label(mask_label_words("Supported, refuted or not enough information?", words), words)


def test_a_dataset_entry_names_its_labels(tmp_path):
    spec = dataset_entry(format="esnli", path="-", labels=["entailment", "neutral", "contradiction"],
                         label_words=ESNLI_WORDS)
    assert dataset_label_words(spec) == ["entail", "neutral", "contradict"]
    plain = dataset_entry(format="jsonl", path="-", labels=["negative", "positive"])
    assert dataset_label_words(plain) == ["negative", "positive"]


def test_share_of_the_studys_own_explanations_that_name_a_label():
    """The study's GPT-4o mini and Llama3 zero-shot e-SNLI explanations: 47 and 40 of 840 name a label
    (5.6% and 4.8%, as measured in dhaini/README.md); after masking, none does."""
    for name, expected in (("esnli_gpt4o_zs.csv", 47), ("esnli_llama3_zs.csv", 40)):
        texts = pd.read_csv(shared_file("dhaini", name))["explanation"].astype(str)
        flags = [states_label(t, WORDS) for t in texts]
        assert len(texts) == 840 and sum(flags) == expected, name
        assert not any(states_label(mask_label_words(t, WORDS), WORDS) for t in texts)
