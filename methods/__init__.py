"""Registered fine-tuning methods: each prepares a model; the shared engine does the rest.

Importing this package registers every built-in method, ablation and sweep variant.
"""

from methods import baselines  # noqa: F401
from methods.pen2sword import method as _pen2sword  # noqa: F401
from methods import finetuning_transfer, proxytuning, weak2strong  # noqa: F401
