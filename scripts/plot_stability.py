"""Snakemake entry point of rule plot_stability: one dataset's explanation stability over n per class."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.plots:run_stability", snakemake)  # noqa: F821 - injected by Snakemake
