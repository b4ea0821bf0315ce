"""Central DP's client-side clipping as a Flower client mod."""

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict

from fedsim.flower_internals import KEY_CLIPPING_NORM, set_task_identity
from fedsim.privacy.central import CLIPPED_METRIC, client_side_clipping_mod

set_task_identity(run_id=3, node_id=0)
CONTEXT = Context(run_id=3, node_id=9, node_config={}, state=RecordDict(), run_config={})


def arrays(**values) -> ArrayRecord:
    return ArrayRecord({key: Array(np.asarray(v, dtype=np.float32)) for key, v in values.items()})


def message(message_type=MessageType.TRAIN, **config) -> Message:
    content = RecordDict({"arrays": arrays(w=[1.0, 1.0], b=[0.0]), "config": ConfigRecord(config)})
    return Message(content, dst_node_id=9, message_type=message_type)


def replying_with(trained: ArrayRecord, extra: ArrayRecord | None = None):
    def call_next(msg: Message, context: Context) -> Message:
        records = {"arrays": trained, **({"extra": extra} if extra else {}), "metrics": MetricRecord({"loss": 1.0})}
        return Message(RecordDict(records), reply_to=msg)

    return call_next


def test_a_long_update_is_scaled_to_the_clipping_norm_and_reported_clipped():
    # update (3, 4) and (0): norm 5, clipped to norm 1 -> (0.6, 0.8)
    sent = message(**{KEY_CLIPPING_NORM: 1.0})
    reply = client_side_clipping_mod(sent, CONTEXT, replying_with(arrays(w=[4.0, 5.0], b=[0.0]), arrays(c=[7.0])))
    np.testing.assert_allclose(reply.content["arrays"]["w"].numpy(), [1.6, 1.8], rtol=1e-6)
    np.testing.assert_allclose(reply.content["arrays"]["b"].numpy(), [0.0])
    np.testing.assert_array_equal(reply.content["extra"]["c"].numpy(), [7.0])  # other records pass untouched
    assert reply.content["metrics"][CLIPPED_METRIC] == 1


def test_a_short_update_is_kept_and_reported_not_clipped():
    sent = message(**{KEY_CLIPPING_NORM: 10.0})
    reply = client_side_clipping_mod(sent, CONTEXT, replying_with(arrays(w=[4.0, 5.0], b=[0.0])))
    np.testing.assert_allclose(reply.content["arrays"]["w"].numpy(), [4.0, 5.0])
    assert reply.content["metrics"][CLIPPED_METRIC] == 0


def test_messages_without_a_clipping_norm_and_evaluation_messages_pass_as_they_are():
    for sent in (message(), message(MessageType.EVALUATE, **{KEY_CLIPPING_NORM: 1.0})):
        reply = client_side_clipping_mod(sent, CONTEXT, replying_with(arrays(w=[4.0, 5.0], b=[0.0])))
        np.testing.assert_array_equal(reply.content["arrays"]["w"].numpy(), [4.0, 5.0])
        assert CLIPPED_METRIC not in reply.content["metrics"]
