"""Study 1, part 1: LLM-written explanations (``generate``) and how close they come to the
human ones (``scoring``: text ``metrics`` and the ``geval`` LLM judge)."""
