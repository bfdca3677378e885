"""Benchmark suites, evaluators and offline task definitions.

- ``registry``: ``BENCHMARKS`` (humaneval, math-l5, math-500-l5, mmlu, mmlu-cs/-mathematics/-physics/-politics)
- ``evaluate``: ``evaluate_model`` -> ``BenchmarkResult`` per benchmark (lm-eval is the engine)
- ``tasks/``: the offline lm-eval task YAMLs; ``lm_eval_tasks``: the functions they call
- ``humaneval``, ``math``, ``mmlu``: prompts, answer extraction and scoring per benchmark
- ``sandbox``: isolated execution of model-written programs (``run_program``, ``run_many``)
- ``score``: ``score_completions`` for completions produced elsewhere; ``cli``: ``harness eval`` / ``score``
- ``sampling``: fixed stratified subsamples (the micro scale); ``testing``: tiny models for tests
"""
