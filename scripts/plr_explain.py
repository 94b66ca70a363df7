"""Snakemake entry point of rule plr_explain: word/phrase-level occlusion explanations of the PLR."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("plr.occlusion", snakemake)  # noqa: F821 - injected by Snakemake
