"""Snakemake entry point for rule explain (being implemented)."""
raise NotImplementedError("rule explain: not implemented yet")
