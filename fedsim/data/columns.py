"""Checks that a loaded split's feature and label columns hold what a model can train on."""

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from fedsim.config.checks import require

FEATURES_ALLOWED = "numbers, lists or arrays of numbers, or images"


def check_feature_columns(split: datasets.Dataset, feature_columns: list[str], source: str) -> None:
    """Raise ConfigError unless every feature column of ``split`` holds numbers, arrays of numbers or images.

    Only the column types are read, so the check costs nothing whatever the split's size.
    ``source`` names the split in the message (its file, or the dataset and split).
    """
    for column in feature_columns:
        if isinstance(split.features[column], datasets.Image):
            continue
        column_type = split.data.schema.field(column).type
        require(
            _is_numeric(column_type),
            f"dataset.feature_columns: column '{column}' of {source} holds {column_type} values; "
            f"features must be {FEATURES_ALLOWED}.",
        )


def _is_numeric(column_type: pa.DataType) -> bool:
    """Whether ``column_type`` holds numbers, at any depth of lists (Array2D and friends are lists in storage)."""
    if isinstance(column_type, pa.ExtensionType):
        return _is_numeric(column_type.storage_type)
    if pa.types.is_list(column_type) or pa.types.is_large_list(column_type) or pa.types.is_fixed_size_list(column_type):
        return _is_numeric(column_type.value_type)
    return pa.types.is_integer(column_type) or pa.types.is_floating(column_type) or pa.types.is_boolean(column_type)


def check_label_column(split: datasets.Dataset, label_column: str, num_classes: int | None, source: str) -> int:
    """The largest label of ``split`` (-1 when it is empty); ConfigError unless the labels are class ids.

    Class ids are integers from 0 to ``num_classes - 1``, or any integers of at least 0 when
    ``num_classes`` is None (the number of classes then follows from the largest label).
    The labels are read as one Arrow column: no Python loop over the examples.
    """
    labels = split.with_format("arrow")[label_column]
    setting = f"dataset.label_column: column '{label_column}' of {source}"
    if num_classes is None:
        allowed = "integers of at least 0"
    else:
        allowed = f"integers from 0 to {num_classes - 1} ({num_classes} classes)"
    require(
        pa.types.is_integer(labels.type),
        f"{setting} holds {labels.type} values; class labels must be {allowed}.",
    )
    require(
        labels.null_count == 0,
        f"{setting} has {labels.null_count} missing labels; class labels must be {allowed}.",
    )
    if len(labels) == 0:
        return -1
    extremes = pc.min_max(labels)
    smallest, largest = extremes["min"].as_py(), extremes["max"].as_py()
    # -1 is how a ClassLabel column marks an example without a label (hub test splits often have them).
    unlabelled = " (-1 marks an unlabelled example)" if smallest == -1 and num_classes is not None else ""
    require(smallest >= 0, f"{setting} holds the label {smallest}{unlabelled}; class labels must be {allowed}.")
    require(
        num_classes is None or largest < num_classes,
        f"{setting} holds the label {largest}; class labels must be {allowed}.",
    )
    return largest
