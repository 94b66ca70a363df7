# Study 1, part 1b: how good are the explanations? Each test-split explanation is scored
# against all human references: BLEU, ROUGE-1/2/L, BERTScore, MAUVE, G-Eval (LLM judge).


rule score_explanations:
    input:
        explanations="results/explanations/{dataset}/{model}/{shots}shot/seed{seed}/test.jsonl",
        references=lambda wc: split_file(wc.dataset, "test"),
        judge=lambda wc: model_files(config["quality"]["judge"]) if config["quality"]["judge"] else [],
        bertscore=lambda wc: model_files(config["quality"]["bertscore"]["model"]) if config["quality"]["bertscore"]["model"] else [],
        mauve=lambda wc: model_files(config["quality"]["mauve"]["model"]) if config["quality"]["mauve"]["model"] else [],
    output:
        per_example="results/quality/{dataset}/{model}/{shots}shot/seed{seed}/per_example.csv",
        corpus="results/quality/{dataset}/{model}/{shots}shot/seed{seed}/corpus.csv",
    params:
        quality=config["quality"],
        judge=lambda wc: model_spec(config["quality"]["judge"]) if config["quality"]["judge"] else None,
        bertscore=lambda wc: model_spec(config["quality"]["bertscore"]["model"]) if config["quality"]["bertscore"]["model"] else None,
        mauve=lambda wc: model_spec(config["quality"]["mauve"]["model"]) if config["quality"]["mauve"]["model"] else None,
        prompts=config["prompts_dir"],
        task=lambda wc: DATASETS[wc.dataset]["task"],
        labels=lambda wc: DATASETS[wc.dataset]["labels"],
    log:
        "logs/score_explanations/{dataset}/{model}/{shots}shot/seed{seed}.log",
    benchmark:
        "benchmarks/results/score_explanations/{dataset}/{model}/{shots}shot/seed{seed}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(config["quality"]["judge"]) if config["quality"]["judge"] else 0,
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/metrics.yaml"
    script:
        "../../scripts/score_explanations.py"
