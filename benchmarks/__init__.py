"""Benchmark suites, evaluators and lm-eval task configs.

- ``kind``: ``BenchmarkKind`` and ``register_kind``: one module per kind says how to get documents,
  build prompts, score, name items and run under lm-eval (``mmlu``, ``humaneval``, ``math``, ``gsm8k``)
- ``registry``: ``BENCHMARKS`` (humaneval, math-l5, math-500-l5, gsm8k, mmlu, mmlu-cs/-mathematics/-physics/-politics)
- ``evaluate``: ``evaluate_model`` -> ``BenchmarkResult`` per benchmark (lm-eval is the engine), with
  standard errors and continuous metrics (bits per byte, p(correct))
- ``loglik``: direct batched log-likelihoods (choices, reference continuations) matching lm-eval
- ``lm_eval_tasks``: ``task_config(name)``, the inline lm-eval config of a benchmark
- ``sandbox``: isolated execution of model-written programs (``run_program``, ``run_many``)
- ``score``: ``score_completions`` for completions produced elsewhere; ``cli``: ``harness eval`` / ``score``
- ``sampling``: fixed stratified subsamples (the micro scale)
"""
