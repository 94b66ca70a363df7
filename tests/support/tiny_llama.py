"""A tiny random Llama for tests that need speed, not sense: a byte-level BPE tokenizer trained on
a few sentences, a chat template, and random weights. Every engine path runs on it for real
(vLLM on CPU included: head_dim = hidden_size / heads is 32)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from explainbench.io import atomic_path

CORPUS = [
    "a man is playing a guitar on stage", "a woman is reading a book in the park", "two dogs run on the beach",
    "the film was wonderful and moving", "the story is dull and tedious", "a child eats an apple",
    "entailment neutral contradiction positive negative", "the acting was brilliant", "the ending was awful",
]


@dataclass(frozen=True)
class TinyLlamaShape:
    """The size of a tiny random Llama (head_dim = hidden_size / heads must be >= 32 for vLLM on CPU)."""

    hidden_size: int = 64
    layers: int = 2
    heads: int = 2
    vocab_size: int = 512


def build_tiny_llama(out_dir: str | Path, corpus: list[str] | None = None, shape: TinyLlamaShape = TinyLlamaShape(),
                     seed: int = 0) -> Path:
    """A tiny random Llama with a byte-level BPE tokenizer and a chat template (head_dim >= 32 for vLLM)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    corpus = corpus or CORPUS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(
        vocab_size=shape.vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=shape.hidden_size, intermediate_size=shape.hidden_size * 2,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.heads,
                         max_position_embeddings=1024, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(torch.float32)
    with atomic_path(out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        fast.save_pretrained(tmp)
    return Path(out_dir)
