"""What a malicious client does: the attack its training message names, around honest training.

The server puts a ``ClientAttack`` into the config record of each malicious client's
training message (``to_config``: the class path under ``ATTACK_KEY`` and every field
under ``attack-FIELD``, hyphenated); the client reads it back (``client_attack``), so the
ClientApp needs nothing but the message. Data poisoning changes the client's training
examples before it trains (``attacked_data``); model poisoning changes the update the
reply carries (``attack_mod``, a Flower client mod). Only floating-point arrays are
changed: integer ones (a BatchNorm's batch counter) stay as trained.
"""

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType
from hydra.utils import get_class

from fedsim.data import ClientData

ATTACK_KEY = "attack"  # the class path of the client attack, only in malicious clients' training messages


def config_key(field_name: str) -> str:
    """The config-record key of a client attack's field: ``target_class`` -> ``attack-target-class``."""
    return "attack-" + field_name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class ClientAttack:
    """A malicious client's behaviour; the base trains and replies honestly.

    Subclasses are frozen dataclasses whose fields are config values (numbers, strings,
    lists of numbers): they travel in the training message's config record.
    """

    def poison_data(self, data: ClientData) -> ClientData:
        """The client's data as the attacker trains on it (as it is by default)."""
        return data

    def poison_arrays(self, sent: ArrayRecord, trained: ArrayRecord) -> ArrayRecord:
        """The arrays the attacker replies with, given the global ones ``sent`` (the trained ones by default)."""
        return trained

    def to_config(self) -> dict:
        """The config-record entries that describe this attack."""
        entries = {config_key(field.name): getattr(self, field.name) for field in dataclasses.fields(self)}
        return {ATTACK_KEY: f"{type(self).__module__}.{type(self).__qualname__}", **entries}


class UpdateAttack(ClientAttack):
    """Model poisoning: the reply carries sent + the poisoned update of every float array."""

    def poison_updates(self, updates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The updates the attacker sends instead of its honest ``updates`` (trained - sent, by array name)."""
        raise NotImplementedError

    def poison_arrays(self, sent: ArrayRecord, trained: ArrayRecord) -> ArrayRecord:
        sent_arrays = dict(zip(sent.keys(), sent.to_numpy_ndarrays(), strict=True))
        trained_arrays = dict(zip(trained.keys(), trained.to_numpy_ndarrays(), strict=True))
        honest = {
            name: array - sent_arrays[name]
            for name, array in trained_arrays.items()
            if np.issubdtype(array.dtype, np.floating)
        }
        updates = self.poison_updates(honest)
        return ArrayRecord({
            name: Array(np.ascontiguousarray((sent_arrays[name] + updates[name]).astype(array.dtype)))
            if name in updates else Array(np.ascontiguousarray(array))
            for name, array in trained_arrays.items()
        })


@functools.cache
def client_attack_class(path: str) -> type[ClientAttack]:
    """The client attack class a message names."""
    attack_class = get_class(path)
    if not issubclass(attack_class, ClientAttack):
        raise TypeError(f"{path} is not a fedsim client attack")
    return attack_class


def client_attack(config: ConfigRecord) -> ClientAttack | None:
    """The attack a training message's config asks for; None for an honest client."""
    if ATTACK_KEY not in config:
        return None
    attack_class = client_attack_class(str(config[ATTACK_KEY]))
    return attack_class(**{field.name: config[config_key(field.name)] for field in dataclasses.fields(attack_class)})


def attacked_data(data: ClientData, config: ConfigRecord) -> ClientData:
    """The data a client trains on for a message with ``config``: poisoned if the message names an attack."""
    attack = client_attack(config)
    return data if attack is None else attack.poison_data(data)


def attack_mod(message: Message, context: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """A Flower client mod: replace the arrays of a malicious client's training reply as its attack says.

    Outside ``client_side_clipping_mod`` in the chain: an attacker sends what it likes,
    whatever clipping the server asks of honest clients. Other messages pass as they are.
    """
    reply = call_next(message, context)
    if message.metadata.message_type != MessageType.TRAIN or reply.has_error():
        return reply
    attack = client_attack(message.content["config"])
    if attack is not None:
        reply.content["arrays"] = attack.poison_arrays(message.content["arrays"], reply.content["arrays"])
    return reply
