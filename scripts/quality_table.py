"""Snakemake entry point of rule quality_table: every corpus.csv -> the explanation-quality table."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.quality", snakemake)  # noqa: F821 - injected by Snakemake
