"""FedBN: federated learning with local batch normalization (Li et al. 2021).

Li, Jiang, Zhang, Kamp, Dou. "FedBN: Federated Learning on Non-IID Features via
Local Batch Normalization." ICLR 2021.
"""

from torch import nn

from fedsim.client_half import ClientHalf
from strategies.client_state import store
from strategies.fedavg import FedAvg

LOCAL_BATCH_NORM_KEY = "fedbn-local-batch-norm"
BATCH_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batch_norm_keys(model: nn.Module) -> set[str]:
    """The state_dict keys of ``model``'s BatchNorm layers: affine weights and running statistics."""
    return {
        f"{name}.{key}" if name else key
        for name, module in model.named_modules()
        if isinstance(module, BATCH_NORM_LAYERS)
        for key in module.state_dict()
    }


class LocalBatchNormClient(ClientHalf):
    """FedBN's client: its BatchNorm layers never take the global values.

    After training, the client keeps its BatchNorm weights, biases and running
    statistics in the node's state; from then on every message (training and
    evaluation) loads the global model and puts those local layers back. Before its
    first round a client starts from the global BatchNorm layers. It trains with any
    optimizer, its local layers included; nothing corrects the gradients or weights.
    """

    def load(self, model):
        super().load(model)
        if LOCAL_BATCH_NORM_KEY in self.state:
            model.load_state_dict(self.state[LOCAL_BATCH_NORM_KEY].to_torch_state_dict(), strict=False)

    def finish(self, model, metrics):
        keys = batch_norm_keys(model)
        store(self.state, LOCAL_BATCH_NORM_KEY, {k: v for k, v in model.state_dict().items() if k in keys})
        return {}


class FedBN(FedAvg):
    """FedBN's server: FedAvg over the whole model; clients ignore its BatchNorm layers.

    Clients send their full model and the server averages every array, BatchNorm
    layers included. No client ever loads those averaged layers (see
    ``LocalBatchNormClient``), so the training is FedBN's; they only give the global
    model, which the server evaluates centrally, some BatchNorm layers to run with.
    With a model without BatchNorm this is FedAvg, whose arguments (``weighting``) it
    takes.
    """

    client_half = LocalBatchNormClient
