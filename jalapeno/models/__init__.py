"""The float code-completion model that Jalapeño runs: tokenizer, NumPy reference, training."""
