"""Tests for the partition report (fedsim-data): label counts, tables, heatmap, bad input."""

import numpy as np
import pytest
from rich.console import Console

from fedsim.data.report import label_counts, main, partition_counts, report
from fedsim.data import build_partitioner
from fedsim.instantiate import build
from tests.conftest import compose_config


def test_label_counts_are_each_partitions_labels():
    cfg = compose_config("partitioner=pathological", "partitioner.num_classes_per_partition=2")
    data = build(cfg.dataset)
    partitioner = build_partitioner(cfg.partitioner, data, cfg.num_clients, cfg.seed)
    counts = label_counts(data, partitioner)
    assert counts.shape == (5, 10)
    for client, row in enumerate(counts):
        labels = list(partitioner.load_partition(client)["label"])
        assert row.tolist() == [labels.count(c) for c in range(10)]
    assert (np.count_nonzero(counts, axis=1) <= 2).all()


def test_report_prints_each_client_and_draws_the_heatmap(tmp_path):
    from PIL import Image

    console = Console(record=True, width=120)
    cfg = compose_config("partitioner=iid")
    counts = report(cfg, tmp_path / "map.png", "iid", console=console)
    text = console.export_text()
    sizes = counts.sum(axis=1)
    # 1437 training digits over 5 clients, IID: 288 or 287 each
    assert sorted(sizes.tolist()) == [287, 287, 287, 288, 288]
    # every training example is in exactly one client
    train_labels = list(build(cfg.dataset).train["label"])
    assert counts.sum(axis=0).tolist() == [train_labels.count(c) for c in range(10)]
    assert "5 clients, 1437 training examples" in text
    for client, size in enumerate(sizes):
        assert f"│      {client} │      {size} │" in text
    assert Image.open(tmp_path / "map.png").size[0] > 100


def test_many_clients_get_summary_statistics_only(tmp_path):
    console = Console(record=True, width=120)
    counts = report(compose_config("num_clients=50", "partitioner=iid"), tmp_path / "m.png", "t", console=console)
    text = console.export_text()
    assert "examples per client" not in text and "50 clients" in text
    assert f"{np.median(counts.sum(axis=1)):g}" in text


def test_command_line_writes_the_heatmap(tmp_path, capsys):
    main(["dataset=mnist1d", "dataset.num_samples=200", "num_clients=4", "--output", str(tmp_path / "h.png")])
    assert (tmp_path / "h.png").is_file()
    assert "4 clients, 160 training examples" in capsys.readouterr().out


def test_command_line_bad_input_is_one_sentence_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["partitioner=natural"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("fedsim-data: error: partitioner.partition_by") and "\n" not in error


def test_partition_counts_for_shakespeare_roles():
    cfg = compose_config("dataset=shakespeare", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=150",
                         "partitioner=iid", "num_clients=3", "clients_per_round=3")
    counts = partition_counts(cfg)
    assert counts.shape == (3, 80)
