"""Messages as they cross the network: fedsim's resident arrays become Flower's own ``Array`` first.

A SuperLink and a SuperNode store a message as Flower objects and accept only the
types Flower knows: a ``fedsim.resident.ResidentArray`` (a subclass of ``Array`` that
keeps numpy values in memory) is refused as "an unexpected structure". The local and
Ray engines never send one over the network; on a real federation every array of a
message leaving the process is a plain ``Array`` of the same values (the ``.npy`` bytes
Flower would have made anyway): the ClientApp's replies are converted in place
(``with_flower_arrays``), the ServerApp's messages get copies (``FlowerArraysGrid``).
The copies share the arrays' bytes; they keep the server's own records (the global
model a checkpoint pickles) free of what Flower caches on an array it sends (its chunks,
as memoryviews, which cannot be pickled).
"""

from collections.abc import Iterable

from flwr.app import Array, ArrayRecord, Message, RecordDict

from fedsim.grid_view import GridView
from fedsim.resident import ResidentArray


def with_flower_arrays(content: RecordDict) -> RecordDict:
    """``content`` with every resident array of its ArrayRecords replaced, in place, by an ``Array`` of its values."""
    for record in content.array_records.values():
        for name, array in list(record.items()):
            if isinstance(array, ResidentArray):
                record[name] = Array(array.values)
    return content


def flower_copy(record: ArrayRecord) -> ArrayRecord:
    """A new ArrayRecord of plain ``Array`` objects with ``record``'s values (a plain array's bytes are shared)."""
    copy = ArrayRecord()  # not ArrayRecord(dict), which would rebuild every array from its bytes
    for name, array in record.items():
        if isinstance(array, ResidentArray):
            copy[name] = Array(array.values)
        else:
            copy[name] = Array(dtype=array.dtype, shape=tuple(array.shape), stype=array.stype, data=array.data)
    return copy


def _leaving(messages: Iterable[Message]) -> list[Message]:
    """``messages`` with contents whose ArrayRecords are Flower copies (one copy per record, however many share it)."""
    messages = list(messages)
    records: dict[int, ArrayRecord] = {}
    contents: dict[int, RecordDict] = {}
    for message in messages:
        if not message.has_content():
            continue
        content = message.content
        if id(content) not in contents:
            for record in content.array_records.values():
                records.setdefault(id(record), flower_copy(record))
            contents[id(content)] = RecordDict({
                key: records[id(record)] if isinstance(record, ArrayRecord) else record
                for key, record in content.items()
            })
        message.content = contents[id(content)]
    return messages


class FlowerArraysGrid(GridView):
    """A view of a network grid whose pushed messages hold Flower's own arrays only; everything else is delegated."""

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(_leaving(messages))

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self._grid.send_and_receive(_leaving(messages), timeout=timeout)
