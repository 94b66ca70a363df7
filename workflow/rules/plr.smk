# Study 2: penalised logistic regression on frozen (prompt-wrapped) LLM embeddings.
# Texts are embedded once per dataset x model; learning curves and explanations reuse them.


rule embed:
    input:
        train=lambda wc: split_file(wc.dataset, "train"),
        test=lambda wc: split_file(wc.dataset, "test"),
        model=lambda wc: model_files(wc.model),
    output:
        embeddings="results/embeddings/{dataset}/{model}/embeddings.npz",
    params:
        model=lambda wc: model_spec(wc.model),
        dataset=lambda wc: DATASETS[wc.dataset],
        prompts=config["prompts_dir"],
        settings=lambda wc: {k: config["plr"][k] for k in ("pooling", "layer", "encoder_pooling", "wrap_encoder_texts",
                                                           "embed_chunk_size")},
    log:
        "logs/embed/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/embed/{dataset}/{model}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/embed.py"


rule plr_curve:
    input:
        embeddings="results/embeddings/{dataset}/{model}/embeddings.npz",
        train=lambda wc: split_file(wc.dataset, "train"),
        test=lambda wc: split_file(wc.dataset, "test"),
    output:
        curve="results/plr/{dataset}/{model}/curve.csv",
    params:
        settings=lambda wc: {k: config["plr"][k] for k in ("n_per_class", "draws", "penalty", "cv_folds", "seed")},
    log:
        "logs/plr_curve/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/plr_curve/{dataset}/{model}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/core.yaml"
    script:
        "../../scripts/plr_curve.py"


rule plr_explain:
    input:
        embeddings="results/embeddings/{dataset}/{model}/embeddings.npz",
        train=lambda wc: split_file(wc.dataset, "train"),
        test=lambda wc: split_file(wc.dataset, "test"),
        model=lambda wc: model_files(wc.model),
    output:
        phrases="results/plr/{dataset}/{model}/phrases.csv",
        stability="results/plr/{dataset}/{model}/stability.csv",
    params:
        model=lambda wc: model_spec(wc.model),
        dataset=lambda wc: DATASETS[wc.dataset],
        prompts=config["prompts_dir"],
        settings=lambda wc: {k: config["plr"][k] for k in ("n_per_class", "draws", "penalty", "cv_folds", "seed",
                                                           "pooling", "layer", "encoder_pooling", "wrap_encoder_texts", "embed_chunk_size",
                                                           "explain_top_k", "explain_ngram", "explain_max_texts",
                                                           "explain_n_per_class", "explain_texts_per_call", "explain_min_count")},
    log:
        "logs/plr_explain/{dataset}/{model}.log",
    benchmark:
        "benchmarks/results/plr_explain/{dataset}/{model}.tsv"
    threads: 2
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/engines.yaml"
    script:
        "../../scripts/plr_explain.py"
