"""Snakemake entry point of rule classification_table: every fine-tuning and zero-shot run -> the classification table."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.classification", snakemake)  # noqa: F821 - injected by Snakemake
