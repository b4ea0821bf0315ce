"""Datasets as Hugging Face ``datasets``, partitioned with flwr-datasets partitioners."""

import datasets

datasets.disable_progress_bars()

from fedsim.data.dataset import FederatedData
from fedsim.data.federation import ClientData, Federation
from fedsim.data.loaders import load_digits, load_huggingface, load_synthetic
from fedsim.data.partitioners import QuantitySkewPartitioner, build_partitioner

__all__ = [
    "ClientData",
    "FederatedData",
    "Federation",
    "QuantitySkewPartitioner",
    "build_partitioner",
    "load_digits",
    "load_huggingface",
    "load_synthetic",
]
