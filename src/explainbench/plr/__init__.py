"""Study 2: penalised logistic regression on frozen, prompt-wrapped LLM embeddings (``embed``,
stored in the ``embeddings`` file), its learning curve (``classifier``) and occlusion
explanations (``occlusion``)."""
