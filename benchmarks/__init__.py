"""The built-in benchmarks, one module per benchmark kind; importing the package registers them all.

Each kind module registers its kind (``register_kind``) and its benchmarks (``register_benchmark``)
in the core's registries (:data:`harness.registry.BENCHMARK_KINDS`, :data:`harness.registry.BENCHMARKS`);
the core finds this package through the ``harness.benchmark_kinds`` / ``harness.benchmarks`` entry
points, as it would a third-party one. The interface is :mod:`harness.benchmark`, evaluation
:mod:`harness.engine.evaluation`.

- ``mmlu``: MMLU and its groups (mmlu, mmlu-cs/-mathematics/-physics/-politics)
- ``humaneval``: HumanEval, executed in ``sandbox`` (``_sandbox_server`` isolates the programs)
- ``math``: MATH level 5 (math-l5, math-500-l5); ``gsm8k``: GSM8K test
- ``score``: ``score_completions`` for completions produced elsewhere; ``cli``: ``harness eval`` / ``score``
"""

from benchmarks import gsm8k, humaneval, math, mmlu  # noqa: F401  (each registers its kind and benchmarks)
