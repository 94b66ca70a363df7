"""Snakemake entry point for rule explain: one LLM explains every split of a dataset (one engine start)."""
from explainbench.explain import run_explain
from explainbench.workflow import script_logging

if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    with script_logging(snakemake.log[0]):
        wc = snakemake.wildcards
        splits = {s: (snakemake.input[s], snakemake.output[s]) for s in ("test", "dev", "train")}  # test first: the quality scores wait on it
        run_explain(splits=splits, train_path=snakemake.input.train, model_name=wc.model,
                    model_spec=snakemake.params.model, dataset_name=wc.dataset, dataset_spec=snakemake.params.dataset,
                    prompts_dir=snakemake.params.prompts, shots=int(wc.shots), seed=int(wc.seed),
                    settings=snakemake.params.settings)
