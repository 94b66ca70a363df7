"""Snakemake entry point of rule score_explanations: score one explainer's test explanations against the human ones."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("explanations.scoring", snakemake)  # noqa: F821 - injected by Snakemake
