"""Functions the task YAMLs in this folder name with ``!function harness_tasks.<name>``.

lm-eval imports this file by path, so it only re-exports: the code lives in benchmarks.lm_eval_tasks.
"""

from benchmarks.lm_eval_tasks import (  # noqa: F401
    doc_prompt,
    humaneval_pass_at_1,
    humaneval_process_results,
    keep_all_samples,
    load_benchmark,
    math_process_results,
)
