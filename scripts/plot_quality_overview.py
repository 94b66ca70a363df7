"""Snakemake entry point of rule plot_quality_overview: every explainer x shots of one dataset."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.plots:run_quality_overview", snakemake)  # noqa: F821 - injected by Snakemake
