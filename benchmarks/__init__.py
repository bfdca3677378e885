"""Benchmark suites, evaluators and offline task definitions."""
