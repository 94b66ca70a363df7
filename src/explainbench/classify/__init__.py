"""Study 1, part 2: classification with no / human / LLM explanation (``conditions``):
fine-tuned encoders (``finetune``), zero-shot LLMs (``zeroshot``), their ``predictions``."""
