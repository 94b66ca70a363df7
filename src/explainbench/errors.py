"""explainbench's errors. Each message names the file, row and field (or config key) at fault."""


class ExplainBenchError(Exception):
    """Raised for bad input: the message names the file, row and field."""


class DataError(ExplainBenchError):
    """A dataset, split or intermediate file is missing, malformed or inconsistent."""
