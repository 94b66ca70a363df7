"""Snakemake entry point for rule quality_table (being implemented)."""
raise NotImplementedError("rule quality_table: not implemented yet")
