"""lm-eval task definitions (YAML) for the offline benchmarks, and the functions they name."""
