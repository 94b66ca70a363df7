# Config-derived lists and input functions. Rules hold no logic beyond calls to these.
import re

from explainbench.workflow import (
    condition_names,
    demo_data_names,
    demo_model_names,
    parse_condition,
)
from explainbench.provenance import config_hash

CONFIG_HASH = config_hash(config)  # names the config of every report table row

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
DATASETS = config["datasets"]
MODELS = config["models"]
MODEL_PATHS = {name: spec["path"] for name, spec in MODELS.items()}  # report rows name their model


wildcard_constraints:
    dataset=NAME,
    model=NAME,
    encoder=NAME,
    shots=r"\d+",
    seed=r"\d+",
    split="train|dev|test",
    condition=r"none|human|llm-[A-Za-z0-9][A-Za-z0-9._-]*-\d+shot",
    demo_data="|".join(demo_data_names()),
    demo_model="|".join(re.escape(n) for n in demo_model_names()),


# ----------------------------------------------------------------------------- lookups
def model_spec(name):
    return MODELS[name]


def model_files(name):
    """A model's local folder is an input (so the demo models get built); hub ids are not."""
    path = MODELS[name]["path"]
    if path.startswith("resources/models/") or os.path.exists(path):
        return [path]
    return []


def quality_model(role):
    """The model name config `quality` gives a role (judge, bertscore, mauve), or None."""
    q = config["quality"]
    return q["judge"] if role == "judge" else q[role]["model"]


def quality_model_files(role):
    name = quality_model(role)
    return model_files(name) if name else []


def quality_model_spec(role):
    name = quality_model(role)
    return model_spec(name) if name else None


def dataset_file(name):
    spec = DATASETS[name]
    return [] if spec["format"] == "hub" or not (spec["path"].startswith("resources/") or os.path.exists(spec["path"])) else [spec["path"]]


def split_file(dataset, split):
    return f"results/data/{dataset}/{split}.jsonl"


def model_gpus(name):
    """GPUs a model's jobs ask for: its tensor-parallel size on GPU clusters, none on CPU."""
    return MODELS[name]["tensor_parallel_size"] if config["slurm"]["gpu_rules_use_gpus"] else 0


def prompt_file(dataset, stage):
    """The prompt template a stage uses for a dataset (an input, so editing it re-runs the stage)."""
    from explainbench.prompts import template_path

    return str(template_path(config["prompts_dir"], stage, dataset, DATASETS[dataset]["task"]))


def settings(section, keys):
    """The config keys of a stage that a rule passes on (params: a change re-runs the rule)."""
    return {k: config[section][k] for k in keys}


FINETUNE_KEYS = ("template", "text_template", "epochs", "batch_size", "eval_batch_size", "learning_rate",
                 "weight_decay", "warmup_ratio", "max_length", "early_stopping_patience", "keep_checkpoints",
                 "log_every_steps")
PLR_EMBED_KEYS = ("pooling", "layer", "encoder_pooling", "wrap_encoder_texts", "embed_chunk_size")
PLR_CURVE_KEYS = ("n_per_class", "draws", "penalty", "cv_folds", "seed")
PLR_EXPLAIN_KEYS = PLR_CURVE_KEYS + PLR_EMBED_KEYS + (
    "explain_top_k", "explain_ngram", "explain_max_texts", "explain_n_per_class", "explain_texts_per_call",
    "explain_min_count")


def embed_template(wc):
    """The embed prompt, for the models that wrap texts in it (causal LMs; encoders if asked)."""
    if MODELS[wc.model]["kind"] == "causal" or config["plr"]["wrap_encoder_texts"]:
        return prompt_file(wc.dataset, "embed")
    return []


def first_explain_seed():
    return config["explain"]["seeds"][0]


def explanation_file(dataset, condition, split):
    """The explanation file a condition reads (llm conditions only)."""
    model, shots = parse_condition(condition)
    return f"results/explanations/{dataset}/{model}/{shots}shot/seed{first_explain_seed()}/{split}.jsonl"


def condition_inputs(wc, splits):
    if wc.condition in ("none", "human"):
        return []
    return [explanation_file(wc.dataset, wc.condition, s) for s in splits]


# ----------------------------------------------------------------------------- targets
def explanation_targets():
    e = config["explain"]
    return expand("results/quality/{dataset}/{model}/{shots}shot/seed{seed}/corpus.csv",
                  dataset=e["datasets"], model=e["explainers"], shots=e["shots"], seed=e["seeds"])


def finetune_targets():
    f = config["finetune"]
    return [f"results/finetune/{d}/{enc}/{cond}/seed{seed}/metrics.json"
            for d in f["datasets"] for enc in f["encoders"]
            for cond in condition_names(config, d, f["conditions"]) for seed in f["seeds"]]


def zeroshot_targets():
    z = config["zeroshot"]
    return [f"results/zeroshot/{d}/{m}/{cond}/metrics.json"
            for d in z["datasets"] for m in z["classifiers"]
            for cond in condition_names(config, d, z["conditions"])]


def plr_zeroshot_models(dataset):
    """LLMs whose zero-shot accuracy is drawn against a PLR curve."""
    p = config["plr"]
    own = [m for m in p["models"] if MODELS[m]["kind"] == "causal"]
    return list(dict.fromkeys(own + p["zeroshot_models"]))


def plr_targets():
    p = config["plr"]
    return (expand("results/plr/{dataset}/{model}/curve.csv", dataset=p["datasets"], model=p["models"])
            + expand("results/plr/{dataset}/{model}/phrases.csv", dataset=p["datasets"], model=p["models"])
            + [f"results/zeroshot/{d}/{m}/none/metrics.json" for d in p["datasets"] for m in plr_zeroshot_models(d)])


def predictions_of(metrics_files):
    """The predictions.csv beside each metrics.json (the report's paired differences read them)."""
    return [f.replace("metrics.json", "predictions.csv") for f in metrics_files]


def plot_targets():
    """Learning curves per PLR dataset, classification per classified dataset, a heat map per explainer."""
    e, p, f, z = (config[k] for k in ("explain", "plr", "finetune", "zeroshot"))
    classified = [d for d in f["datasets"] if f["encoders"]] + [d for d in z["datasets"] if z["classifiers"]]
    names = ([f"learning_curves_{d}" for d in p["datasets"] if p["models"]]
             + [f"classification_{d}" for d in dict.fromkeys(classified)]
             + [f"quality_heatmap_{m}" for m in e["explainers"] if e["datasets"]])
    return [f"results/plots/{n}.{ext}" for n in names for ext in ("png", "svg")]


def all_targets():
    return ["results/tables/explanation_quality.csv", "results/tables/classification.csv",
            "results/tables/plr_learning_curves.csv"] + plot_targets()
