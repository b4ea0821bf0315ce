"""fedsim: reproducible federated-learning simulations on Flower, PyTorch and Hydra."""

__version__ = "0.1.0"
