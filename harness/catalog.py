"""Imports every built-in module that registers something, so the registries are complete."""

from __future__ import annotations

import importlib

BUILTIN_MODULES = (
    "harness.data",  # datasets
    "harness.suites",  # suites
    "harness.models",  # models (zoo roles and the paper's hub models)
    "methods",  # methods, ablations, sweeps
    "benchmarks.registry",  # benchmarks
)


def load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
