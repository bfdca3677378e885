"""Benchmark: Pen2Sword transfer (eq. 2–7) at Llama-2 shapes, CodeLlama-7B expert into Llama-2-13B.

E_S 32,016×4,096 and E_T 32,000×5,120 in fp32 with 32,000 shared token strings and 16 expert-only
ones, as between CodeLlama-7B and Llama-2-13B. Needs ~3 GB of memory. Run it with
``pytest -m perf tests/perf/test_bench_transfer.py --benchmark-only`` (perf tests are outside the default run).
"""

from __future__ import annotations

import time

import pytest
import torch

from methods.pen2sword.transfer import TransferOptions, transfer_embeddings

K_SHARED, K_EXPERT_ONLY = 32_000, 16
D_S, D_T = 4_096, 5_120
pytestmark = pytest.mark.perf

TIME_LIMIT_S = 30.0


@pytest.mark.benchmark(group="pen2sword-transfer")
def test_transfer_llama2_shapes(benchmark):
    generator = torch.Generator().manual_seed(0)
    E_S = torch.randn(K_SHARED + K_EXPERT_ONLY, D_S, generator=generator)
    E_T = torch.randn(K_SHARED, D_T, generator=generator)
    vocab_T = {f"tok{i}": i for i in range(K_SHARED)}
    vocab_S = {**vocab_T, **{f"<extra_{i}>": K_SHARED + i for i in range(K_EXPERT_ONLY)}}
    elapsed: list[float] = []

    def run():
        start = time.perf_counter()
        result = transfer_embeddings(E_S, vocab_S, E_T, vocab_T, TransferOptions())
        elapsed.append(time.perf_counter() - start)
        return result

    E_hat, union, report = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["seconds_per_stage"] = report["seconds"]
    assert E_hat.shape == (K_SHARED + K_EXPERT_ONLY, D_T)
    assert union.shared_count == K_SHARED and len(union.expert_only_tokens) == K_EXPERT_ONLY
    assert max(elapsed) < TIME_LIMIT_S, f"transfer took {max(elapsed):.1f} s at Llama-2 shapes (limit {TIME_LIMIT_S} s)"
