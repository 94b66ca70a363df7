"""Snakemake entry point: fine-tune one encoder on one dataset for one explanation condition and seed."""
from explainbench.finetune import run_finetune
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    import torch

    torch.set_num_threads(snakemake.threads)
    explanations = dict(zip(["train", "dev", "test"], snakemake.input.explanations))
    metrics = run_finetune(
        train_path=snakemake.input.train, dev_path=snakemake.input.dev, test_path=snakemake.input.test,
        condition=snakemake.wildcards.condition, explanation_paths=explanations,
        model_spec=snakemake.params.model, encoder=snakemake.wildcards.encoder,
        dataset_spec=snakemake.params.dataset, dataset=snakemake.wildcards.dataset,
        settings=snakemake.params.settings, seed=int(snakemake.wildcards.seed),
        n_boot=snakemake.params.bootstrap,
        metrics_path=snakemake.output.metrics, predictions_path=snakemake.output.predictions)
    log.info("accuracy %.4f %s, macro-F1 %.4f", metrics["accuracy"], metrics["accuracy_ci"], metrics["macro_f1"])
