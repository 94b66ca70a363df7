"""Snakemake entry point of rule plr_table: PLR curves, zero-shot baselines and phrases -> the PLR table."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.learning_curves", snakemake)  # noqa: F821 - injected by Snakemake
