# Config-derived lists, path templates and input functions. Rules hold no logic beyond calls
# to these; every result path is declared once, in PATHS, for outputs and targets alike.
import re

from explainbench.config import result_keys
from explainbench.prompts import template_path
from explainbench.provenance import config_hash
from explainbench.splits import check_changed_data
from explainbench.workflow import (
    condition_names,
    demo_data_names,
    demo_model_names,
    parse_condition,
    rule_params,
)

CONFIG_HASH = config_hash(config)  # names the config of every report table row

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
DATASETS = config["datasets"]
MODELS = config["models"]
DEMO_DATA_FILES = {f"resources/demo/{name}.jsonl" for name in demo_data_names()}


wildcard_constraints:
    dataset=NAME,
    model=NAME,
    shots=r"\d+",
    seed=r"\d+",
    split="train|dev|test",
    condition=r"none|human|llm-[A-Za-z0-9][A-Za-z0-9._-]*-\d+shot",
    demo_data="|".join(demo_data_names()),
    demo_model="|".join(re.escape(n) for n in demo_model_names()),


# ----------------------------------------------------------------------------- result paths
# The cache key of every result is its path: stage / dataset / model / shots or condition / seed.
PATHS = {
    "split": "results/data/{dataset}/{split}.jsonl",
    "split_summary": "results/data/{dataset}/summary.json",
    "explanations": "results/explanations/{dataset}/{model}/{shots}shot/seed{seed}/{split}.jsonl",
    "quality_per_example": "results/quality/{dataset}/{model}/{shots}shot/seed{seed}/per_example.csv",
    "quality_corpus": "results/quality/{dataset}/{model}/{shots}shot/seed{seed}/corpus.csv",
    "finetune_metrics": "results/finetune/{dataset}/{model}/{condition}/seed{seed}/metrics.json",
    "finetune_predictions": "results/finetune/{dataset}/{model}/{condition}/seed{seed}/predictions.csv",
    "zeroshot_metrics": "results/zeroshot/{dataset}/{model}/{condition}/metrics.json",
    "zeroshot_predictions": "results/zeroshot/{dataset}/{model}/{condition}/predictions.csv",
    "embeddings": "results/embeddings/{dataset}/{model}/embeddings.npz",
    "plr_curve": "results/plr/{dataset}/{model}/curve.csv",
    "plr_phrases": "results/plr/{dataset}/{model}/phrases.csv",
    "plr_stability": "results/plr/{dataset}/{model}/stability.csv",
    "table": "results/tables/{table}.{ext}",
    "plot": "results/plots/{plot}.{ext}",
}


def path(name, **values):
    """PATHS[name] with the given wildcards filled in and the others left as wildcards."""
    template = PATHS[name]
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def table(name, ext):
    return path("table", table=name, ext=ext)


# ----------------------------------------------------------------------------- params
def model_params(name):
    """What of a model's entry changes its results (runtime-only keys left out, keys sorted)."""
    return result_keys(MODELS[name], "models.*") if name else None


def dataset_params(name):
    return result_keys(DATASETS[name], "datasets.*")


def settings(rule):
    """The config settings a rule's jobs read that change their results (explainbench.workflow.SETTINGS)."""
    return rule_params(config, rule)


# ----------------------------------------------------------------------------- lookups
def model_files(name):
    """A model's local folder is an input (so the demo models get built); hub ids are not."""
    model_path = MODELS[name]["path"]
    if model_path.startswith("resources/models/") or os.path.exists(model_path):
        return [model_path]
    return []


def quality_model(role):
    """The model name config `quality` gives a role (judge, bertscore, mauve), or None."""
    q = config["quality"]
    return q["judge"] if role == "judge" else q[role]["model"]


def quality_model_files(role):
    name = quality_model(role)
    return model_files(name) if name else []


def dataset_file(name):
    """A dataset's local file, an input of prepare_data: a file the pipeline writes (the demo data)
    by its mtime; the user's own by its content (ancient: its mtime is ignored, and
    dataset_content makes the SHA-256 of its bytes a param instead)."""
    spec = DATASETS[name]
    if spec["format"] == "hub":
        return []
    if spec["path"] in DEMO_DATA_FILES:
        return [spec["path"]]
    return [ancient(spec["path"])] if os.path.exists(spec["path"]) else []


def dataset_content(name):
    """prepare_data's param: the SHA-256 of a user's data file, so that new bytes re-run the splits
    and an identical copy with a new mtime re-runs nothing; data changed since the splits were
    written is checked now, before Snakemake deletes them (explainbench.splits.check_changed_data)."""
    if DATASETS[name]["path"] in DEMO_DATA_FILES:
        return None
    return check_changed_data(DATASETS[name], name, path("split_summary", dataset=name))


def split_file(dataset, split):
    return path("split", dataset=dataset, split=split)


def model_gpus(name):
    """GPUs a model's jobs ask for: its tensor-parallel size on GPU clusters, none on CPU."""
    return MODELS[name]["tensor_parallel_size"] if config["slurm"]["gpu_rules_use_gpus"] else 0


def prompt_file(dataset, stage):
    """The prompt template a stage uses for a dataset (an input, so editing it re-runs the stage)."""
    return str(template_path(config["prompts_dir"], stage, dataset, DATASETS[dataset]["task"]))


def embed_template(wc):
    """The embed prompt, for the models that wrap texts in it (causal LMs; encoders if asked)."""
    if MODELS[wc.model]["kind"] == "causal" or config["plr"]["wrap_encoder_texts"]:
        return prompt_file(wc.dataset, "embed")
    return []


def explanation_file(dataset, condition, split):
    """The explanation file a condition reads (llm conditions only): the first explain seed's."""
    model, shots = parse_condition(condition)
    return path("explanations", dataset=dataset, model=model, shots=shots, seed=config["explain"]["seeds"][0],
                split=split)


def condition_inputs(wc, splits):
    if wc.condition in ("none", "human"):
        return []
    return [explanation_file(wc.dataset, wc.condition, s) for s in splits]


# ----------------------------------------------------------------------------- targets
def explanation_targets():
    e = config["explain"]
    return expand(PATHS["quality_corpus"], dataset=e["datasets"], model=e["explainers"], shots=e["shots"],
                  seed=e["seeds"])


def finetune_targets(kind="metrics"):
    f = config["finetune"]
    return [path(f"finetune_{kind}", dataset=d, model=m, condition=c, seed=s)
            for d in f["datasets"] for m in f["encoders"]
            for c in condition_names(config, d, f["conditions"]) for s in f["seeds"]]


def zeroshot_targets(kind="metrics"):
    z = config["zeroshot"]
    return [path(f"zeroshot_{kind}", dataset=d, model=m, condition=c)
            for d in z["datasets"] for m in z["classifiers"] for c in condition_names(config, d, z["conditions"])]


def plr_zeroshot_models():
    """LLMs whose zero-shot accuracy is drawn against a PLR curve."""
    p = config["plr"]
    own = [m for m in p["models"] if MODELS[m]["kind"] == "causal"]
    return list(dict.fromkeys(own + p["zeroshot_models"]))


def plr_targets(kind):
    p = config["plr"]
    return expand(PATHS[f"plr_{kind}"], dataset=p["datasets"], model=p["models"])


def plr_zeroshot_targets():
    return expand(path("zeroshot_metrics", condition="none"), dataset=config["plr"]["datasets"],
                  model=plr_zeroshot_models())


def plot_targets():
    """Learning curves per PLR dataset, classification per classified dataset, a heat map per explainer."""
    e, p, f, z = (config[k] for k in ("explain", "plr", "finetune", "zeroshot"))
    classified = [d for d in f["datasets"] if f["encoders"]] + [d for d in z["datasets"] if z["classifiers"]]
    names = ([f"learning_curves_{d}" for d in p["datasets"] if p["models"]]
             + [f"classification_{d}" for d in dict.fromkeys(classified)]
             + [f"quality_heatmap_{m}" for m in e["explainers"] if e["datasets"]])
    return expand(PATHS["plot"], plot=names, ext=["png", "svg"])


def all_targets():
    return [table(t, "csv") for t in ("explanation_quality", "classification", "plr_learning_curves")] + plot_targets()
