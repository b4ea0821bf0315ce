"""Client-side tensors of algorithms: the trainable weights and per-parameter state kept between rounds."""

import torch
from flwr.app import RecordDict
from torch import nn

from fedsim.resident import resident_record


def trainable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of ``model``'s trainable parameters by name, in the order SGD visits them."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def stored_or_zeros(state: RecordDict, key: str, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors stored under ``key`` in the node's state, or zeros shaped like ``like``
    when this client has not stored them yet (its first round)."""
    if key not in state:
        return {name: torch.zeros_like(tensor) for name, tensor in like.items()}
    stored = state[key].to_torch_state_dict()
    return {name: stored[name].to(tensor.device) for name, tensor in like.items()}


def store(state: RecordDict, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Keep ``tensors`` in the node's state under ``key`` until this client's next round."""
    state[key] = resident_record(tensors)


def norm(tensors: dict[str, torch.Tensor]) -> float:
    """Euclidean norm of all ``tensors`` taken together as one vector."""
    squares = sum(((tensor.double() ** 2).sum() for tensor in tensors.values()), torch.zeros((), dtype=torch.float64))
    return float(torch.sqrt(squares))
