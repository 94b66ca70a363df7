"""Snakemake entry point for rule finetune (being implemented)."""
raise NotImplementedError("rule finetune: not implemented yet")
