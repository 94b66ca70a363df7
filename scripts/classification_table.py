"""Snakemake entry point for rule classification_table (being implemented)."""
raise NotImplementedError("rule classification_table: not implemented yet")
