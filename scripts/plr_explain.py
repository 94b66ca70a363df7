"""Snakemake entry point for rule plr_explain (being implemented)."""
raise NotImplementedError("rule plr_explain: not implemented yet")
