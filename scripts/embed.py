"""Snakemake entry point for rule embed: prompt-wrapped embeddings of train and test, once per model x dataset."""
from explainbench.workflow import script_logging

if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    with script_logging(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
        from explainbench.embed import embed_dataset

        embed_dataset(train=snakemake.input.train, test=snakemake.input.test,  # noqa: F821
                      out=snakemake.output.embeddings, model_spec=snakemake.params.model,  # noqa: F821
                      model_name=snakemake.wildcards.model, dataset_spec=snakemake.params.dataset,  # noqa: F821
                      dataset_name=snakemake.wildcards.dataset, prompts_dir=snakemake.params.prompts,  # noqa: F821
                      plr=snakemake.params.settings)  # noqa: F821
