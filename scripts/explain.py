"""Snakemake entry point for rule explain: one LLM writes an explanation for each example of a split."""
from explainbench.explain import run_explain
from explainbench.workflow import script_logging

if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    with script_logging(snakemake.log[0]):
        wc = snakemake.wildcards
        run_explain(examples_path=snakemake.input.examples, train_path=snakemake.input.train,
                    output=snakemake.output.explanations, model_name=wc.model, model_spec=snakemake.params.model,
                    dataset_name=wc.dataset, dataset_spec=snakemake.params.dataset,
                    prompts_dir=snakemake.params.prompts, shots=int(wc.shots), seed=int(wc.seed), split=wc.split,
                    settings=snakemake.params.settings)
