"""Label scoring shares each prompt between the options and still gives the exact log-probabilities:
the engines' label_logprobs against the method they used before (one full sequence per prompt
and option, tests/support/reference_scoring.py), on real e-SNLI zero-shot prompts with SmolLM2."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ESNLI_LABELS
from explainbench.classify.zeroshot import answer_options, build_prompts, verbalizers
from explainbench.engines.base import option_scores, option_steps
from explainbench.prompts import load_template
from support.reference_scoring import sequence_logprobs

from test_zeroshot import PROMPTS

# The zero-shot answers (" entailment" is two tokens, the others one), plus options that share a
# first token with another (" entail" is the first token of " entailment") and a four-token one.
EXTRA = [" entail", " no idea at all"]


def test_option_steps_ask_each_prefix_once_and_the_scores_sum_by_the_chain_rule():
    options = [[5, 7], [9], [5, 8], [5, 7, 2]]
    assert option_steps(options) == [((), [5, 9]), ((5,), [7, 8]), ((5, 7), [2])]
    found = {(): [{5: -1.0, 9: -2.0}], (5,): [{7: -0.5, 8: -3.0}], (5, 7): [{2: -0.25}]}
    np.testing.assert_allclose(option_scores(options, found, 1), [[-1.5, -2.0, -4.0, -1.75]])


def prompts_and_options(backend, records):
    """The e-SNLI zero-shot prompts of ``records`` (without, with the explanation) and the options."""
    template = load_template(PROMPTS, "classify", "esnli", "nli")
    words = verbalizers(ESNLI_LABELS, None)
    plain, explained = records
    prompts = (build_prompts(backend, plain, template, words, with_explanation=False)
               + build_prompts(backend, explained, template, words, with_explanation=True))
    return prompts, answer_options(template, words) + EXTRA


def _scores(backend, records):
    prompts, options = prompts_and_options(backend, records)
    assert [len(backend.option_ids(o)) for o in options] == [2, 1, 1, 1, 4]
    return backend.label_logprobs(prompts, options), sequence_logprobs(backend, prompts, options)


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_scores_equal_the_full_sequence_scores(smollm2_vllm, esnli_prompt_records):
    new, reference = _scores(smollm2_vllm, esnli_prompt_records)
    assert new.shape == (12, 5) and np.isfinite(new).all() and (new < 0).all()
    np.testing.assert_allclose(new, reference, atol=2e-3)
    # the next-token request of " entail" and the first step of " entailment" are the same question
    np.testing.assert_array_less(new[:, 0], new[:, 3])


@pytest.mark.slow
def test_transformers_scores_equal_the_full_sequence_scores(smollm2_transformers, esnli_prompt_records):
    new, reference = _scores(smollm2_transformers, esnli_prompt_records)
    assert new.shape == (12, 5) and np.isfinite(new).all() and (new < 0).all()
    np.testing.assert_allclose(new, reference, atol=2e-3)
    np.testing.assert_array_less(new[:, 0], new[:, 3])
