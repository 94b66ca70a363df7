"""Snakemake entry point for rule embed (being implemented)."""
raise NotImplementedError("rule embed: not implemented yet")
