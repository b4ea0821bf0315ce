"""Datasets as Hugging Face ``datasets``, partitioned with flwr-datasets partitioners."""

import datasets

from fedsim.lazy_import import defer_submodule

datasets.disable_progress_bars()
defer_submodule("flwr_datasets.visualization")  # seaborn, scipy.stats, pyplot: plots fedsim never draws

from fedsim.data.augmentation import RandomCropFlip
from fedsim.data.dataset import FederatedData, TensorTransform
from fedsim.data.fashion_mnist import load_fashion_mnist
from fedsim.data.federation import ClientData, Federation
from fedsim.data.keywords import load_keywords
from fedsim.data.loaders import load_digits, load_huggingface, load_synthetic
from fedsim.data.mnist1d import load_mnist1d
from fedsim.data.partitioners import (
    DirichletPartitioner,
    IidPartitioner,
    NaturalIdPartitioner,
    PathologicalPartitioner,
    QuantitySkewPartitioner,
    ShardPartitioner,
    build_partitioner,
)
from fedsim.data.shakespeare import load_shakespeare
from fedsim.data.speech_commands import load_speech_commands

__all__ = [
    "ClientData",
    "DirichletPartitioner",
    "FederatedData",
    "Federation",
    "IidPartitioner",
    "NaturalIdPartitioner",
    "PathologicalPartitioner",
    "QuantitySkewPartitioner",
    "RandomCropFlip",
    "ShardPartitioner",
    "TensorTransform",
    "build_partitioner",
    "load_digits",
    "load_fashion_mnist",
    "load_huggingface",
    "load_keywords",
    "load_mnist1d",
    "load_shakespeare",
    "load_speech_commands",
    "load_synthetic",
]
