# Study 1, part 2a: fine-tune encoder PLMs on premise + hypothesis (+ explanation), for the
# conditions none / human / llm-<explainer>-<k>shot(-masked), on every fold, several seeds.
# The same explanation source is used for train, dev and test.


rule finetune:
    input:
        examples=lambda wc: examples_file(wc.dataset),
        explanations=condition_inputs,
        model=lambda wc: model_files(wc.model),
    output:
        metrics=PATHS["finetune_metrics"],
        predictions=PATHS["finetune_predictions"],
    params:
        model=lambda wc: model_params(wc.model),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("finetune"),
    log:
        "logs/finetune/{dataset}/fold{fold}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "benchmarks/results/finetune/{dataset}/fold{fold}/{model}/{condition}/seed{seed}.tsv"
    threads: 1  # MiniLM on CPU kept 0.6 of a core busy with 2 threads: two jobs side by side finish sooner (--set-threads finetune=N)
    resources:
        gpu=1 if config["slurm"]["gpu_rules_use_gpus"] else 0,
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/finetune.py"
