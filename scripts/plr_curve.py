"""Snakemake entry point for rule plr_curve (being implemented)."""
raise NotImplementedError("rule plr_curve: not implemented yet")
