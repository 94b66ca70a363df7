"""explainbench: do LLM explanations help classifiers, and is a small LLM + PLR enough?

The library behind the Snakemake workflow. Modules, by what they hold:

- ``config``      load and validate the workflow config (JSON schema with defaults)
- ``data``        one record shape and the loaders (e-SNLI, HealthFC, CSV/TSV/JSONL/Parquet, hub)
- ``splits``      seeded, stratified splits and n-per-class samples
- ``demo``        the offline demo data and models the default config runs on
- ``prompts``     prompt templates (data files) and their rendering
- ``backends``    one interface (generate, label log-probabilities, embed) for vLLM,
                  transformers and OpenAI-compatible servers
"""

__version__ = "0.1.0"


class ExplainBenchError(Exception):
    """Raised for bad input: the message names the file, row and field."""
