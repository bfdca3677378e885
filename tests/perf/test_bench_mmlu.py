"""MMLU log-likelihood throughput: the direct batched path (batch 16 and 1) against lm-eval, one model.

Run: pytest -m perf tests/perf/test_bench_mmlu.py --benchmark-only -s
The direct path scores all four letters with one forward pass over each prompt, projects onto the
vocabulary only at the position that predicts the letter, and batches prompts sorted by length.
One torch thread: with two, a single busy neighbour process slows CPU matmuls 5-10x (stack notes),
which would swamp the comparison. All three are timed in one run, interleaved; best of two rounds.
"""

from __future__ import annotations

import os
import time

import pytest

from benchmarks import mmlu
from harness.engine.evaluation import _LmEval, select_items
from harness.registry import BENCHMARKS
from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer

pytestmark = [pytest.mark.perf, pytest.mark.usefixtures("data_cache")]

N_ITEMS = 192


def test_mmlu_loglik_throughput(benchmark):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tok = tiny_tokenizer(vocab_size=4096)
        model = tiny_llama(tok, hidden=256, layers=6, heads=8)  # ~ the stack notes' h256 l6 model
        spec = BENCHMARKS.get("mmlu")
        docs, _ = spec.documents()
        indices, _ = select_items(spec, docs, N_ITEMS, seed=0)  # stratified over the 57 subjects
        prompts = [docs[i]["prompt"] for i in indices]

        def direct(batch_size: int) -> float:
            start = time.perf_counter()
            mmlu.letter_logliks(model, tok, prompts, batch_size=batch_size)
            return N_ITEMS / (time.perf_counter() - start)

        def via_lm_eval() -> float:
            engine = _LmEval(model, tok, batch_size=16)
            start = time.perf_counter()
            engine.run(spec, indices, fewshot=0, seed=0, gen_kwargs=None, repeats=1)
            return N_ITEMS / (time.perf_counter() - start)

        direct(16)  # warm-up
        rounds = [(direct(16), direct(1), via_lm_eval()) for _ in range(2)]
        batched, single, lm_eval = (max(r[i] for r in rounds) for i in range(3))
        load = os.getloadavg()[0]
        benchmark.extra_info.update(items=N_ITEMS, torch_threads=1, direct_batch16_items_per_s=batched,
                                    direct_batch1_items_per_s=single, lm_eval_batch16_items_per_s=lm_eval,
                                    load_average_1min=load)
        benchmark.pedantic(lambda: mmlu.letter_logliks(model, tok, prompts, batch_size=16), rounds=2, iterations=1)
    finally:
        torch.set_num_threads(threads)
    print(f"\nMMLU log-likelihood, {N_ITEMS} items, Llama h256 l6, 1 thread: direct batch 16 {batched:.1f} items/s, "
          f"direct batch 1 {single:.1f} items/s, lm-eval batch 16 {lm_eval:.1f} items/s (load {load:.1f})")
    assert batched >= lm_eval, "the direct batched path should not be slower than lm-eval"
