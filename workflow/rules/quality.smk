# Study 1, part 1b: how good are the explanations? The explanations of each fold's test
# examples are scored against all human references: BLEU, ROUGE-1/2/L, BERTScore, MAUVE,
# G-Eval (LLM judge), and the share that names a label. One job per fold.


rule score_explanations:
    input:
        explanations=PATHS["explanations"],
        examples=lambda wc: examples_file(wc.dataset),
        judge=quality_model_files("judge"),
        judge_service=lambda wc: engine_service(quality_model("judge"), wc.dataset),
        bertscore=quality_model_files("bertscore"),
        mauve=quality_model_files("mauve"),
        geval_template=lambda wc: prompt_file(wc.dataset, "geval") if quality_model("judge") else [],
    output:
        per_example=PATHS["quality_per_example"],
        corpus=PATHS["quality_corpus"],
    params:
        judge=model_params(quality_model("judge")),
        bertscore=model_params(quality_model("bertscore")),
        mauve=model_params(quality_model("mauve")),
        dataset=lambda wc: dataset_params(wc.dataset),
        settings=settings("score_explanations"),
    log:
        "logs/score_explanations/{dataset}/fold{fold}/{model}/{shots}shot/seed{seed}.log",
    benchmark:
        "benchmarks/results/score_explanations/{dataset}/fold{fold}/{model}/{shots}shot/seed{seed}.tsv"
    threads: engine_threads(quality_model("judge"))
    resources:
        gpu=model_gpus(quality_model("judge")) if quality_model("judge") and not served(quality_model("judge")) else 0,
        mem_mb=engine_mem_mb(quality_model("judge"), served_mb=4000),  # BERTScore and MAUVE run here
        runtime=120,
    conda:
        "../../envs/metrics.yaml"
    script:
        "../../scripts/score_explanations.py"
