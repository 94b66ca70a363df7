"""Snakemake entry point for rule plr_curve: PLR learning curve from the cached embeddings."""
from explainbench.workflow import script_logging

if __name__ == "__main__":
    with script_logging(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
        from explainbench.plr import run_curve

        run_curve(embeddings=snakemake.input.embeddings, train=snakemake.input.train,  # noqa: F821
                  test=snakemake.input.test, out=snakemake.output.curve,  # noqa: F821
                  dataset=snakemake.wildcards.dataset, model=snakemake.wildcards.model,  # noqa: F821
                  settings=snakemake.params.settings)  # noqa: F821
