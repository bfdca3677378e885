"""lm-eval task configs for the registered benchmarks, built from their kinds (inline, no YAML).

Evaluation builds these itself; this module is for running a benchmark through lm-eval directly,
with any lm-eval model, on exactly the documents and protocol a harness run scores::

    from lm_eval import simple_evaluate
    from benchmarks.lm_eval_tasks import task_config

    simple_evaluate(model="hf", model_args="pretrained=/path/to/model",
                    tasks=[task_config("humaneval"), task_config("mmlu-cs", fewshot=5)],
                    confirm_run_unsafe_code=True)

HumanEval's metric runs our sandbox (:mod:`benchmarks.sandbox`), never lm-eval's ``code_eval``.
"""

from __future__ import annotations

from benchmarks.evaluate import select_items
from benchmarks.registry import get_benchmark


def task_config(benchmark: str, *, fewshot: int = 0, seed: int = 0, limit: int | None = None,
                max_gen_toks: int = 512, **options) -> dict:
    """The inline lm-eval config of ``benchmark`` under the ``fewshot`` protocol (greedy generation);
    ``limit`` keeps the same stratified subsample an evaluation with that ``seed`` scores."""
    spec = get_benchmark(benchmark)
    docs, _ = spec.documents(fewshot=fewshot, seed=seed, **options)
    indices, _ = select_items(spec, docs, limit, seed)
    generation = None if spec.kind_impl.output_type == "multiple_choice" else {"do_sample": False,
                                                                                "max_gen_toks": max_gen_toks}
    return spec.kind_impl.lm_eval_task(spec, [docs[i] for i in indices], fewshot=fewshot, generation=generation)
