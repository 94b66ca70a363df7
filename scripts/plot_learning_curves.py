"""Snakemake entry point of rule plot_learning_curves: one dataset's learning curves."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.plots:run_learning_curves", snakemake)  # noqa: F821 - injected by Snakemake
