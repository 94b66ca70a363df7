"""Snakemake entry point for rule plr_table (being implemented)."""
raise NotImplementedError("rule plr_table: not implemented yet")
