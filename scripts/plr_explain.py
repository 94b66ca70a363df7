"""Snakemake entry point for rule plr_explain: occlusion phrases per class and their stability across draws."""
from explainbench.workflow import script_logging

if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    with script_logging(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
        from explainbench.plr_explain import run_explain

        run_explain(embeddings=snakemake.input.embeddings, train=snakemake.input.train,  # noqa: F821
                    test=snakemake.input.test, phrases_out=snakemake.output.phrases,  # noqa: F821
                    stability_out=snakemake.output.stability, dataset=snakemake.wildcards.dataset,  # noqa: F821
                    model=snakemake.wildcards.model, model_spec=snakemake.params.model,  # noqa: F821
                    dataset_spec=snakemake.params.dataset, prompts_dir=snakemake.params.prompts,  # noqa: F821
                    settings=snakemake.params.settings)  # noqa: F821
