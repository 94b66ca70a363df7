"""Snakemake entry point for rule zeroshot (being implemented)."""
raise NotImplementedError("rule zeroshot: not implemented yet")
