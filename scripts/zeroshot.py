"""Snakemake entry point: an LLM classifies one dataset's test split zero-shot for one condition."""
from explainbench.workflow import script_logging
from explainbench.zeroshot import run_zeroshot

if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    with script_logging(snakemake.log[0]):
        explanations = list(snakemake.input.explanations)
        run_zeroshot(
            test_path=snakemake.input.test, condition=snakemake.wildcards.condition,
            explanation_path=explanations[0] if explanations else None,
            model_spec=snakemake.params.model, model_name=snakemake.wildcards.model,
            dataset_spec=snakemake.params.dataset, dataset=snakemake.wildcards.dataset,
            prompts_dir=snakemake.params.prompts, verbalizer=snakemake.params.verbalizer,
            settings=snakemake.params.settings, n_boot=snakemake.params.bootstrap,
            metrics_path=snakemake.output.metrics, predictions_path=snakemake.output.predictions)
