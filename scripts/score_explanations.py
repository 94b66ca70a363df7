"""Snakemake entry point for rule score_explanations (being implemented)."""
raise NotImplementedError("rule score_explanations: not implemented yet")
