"""Methods: a strategy with its own settings and a label, chosen and swept as one config group."""

import pytest
import yaml
from omegaconf import OmegaConf

from fedsim.compose import compose
from fedsim.plan import check_options
from tests.option_files import CONF, option_names


@pytest.mark.parametrize("name", option_names("method"))
def test_every_method_is_labelled_by_its_file_name_and_passes_its_checks(name):
    cfg, choices = compose(f"method={name}")
    assert cfg.method == name and choices["method"] == name
    check_options(cfg)
    stated = yaml.safe_load((CONF / "method" / f"{name}.yaml").read_text())
    strategy = stated["defaults"][0]["override /strategy"]
    assert choices["strategy"] == strategy
    for key, value in (stated.get("strategy") or {}).items():
        assert cfg.strategy[key] == value


def test_the_fedprox_methods_differ_only_in_mu():
    mus = {name: compose(f"method={name}")[0].strategy.proximal_mu for name in option_names("method")
           if name.startswith("fedprox_mu")}
    assert mus == {"fedprox_mu0.001": 0.001, "fedprox_mu0.01": 0.01, "fedprox_mu0.1": 0.1, "fedprox_mu1": 1}


def test_without_a_method_the_label_is_null_and_a_method_can_set_other_settings_than_the_strategys():
    cfg, choices = compose()
    assert cfg.method is None and "method" not in choices
    cfg, _ = compose("method=fedavg", "client.lr=0.1")  # the command line still wins over a method
    assert cfg.client.lr == 0.1


def test_the_compare_preset_sweeps_existing_methods_over_three_seeds():
    preset = OmegaConf.load(CONF / "experiment" / "compare.yaml")
    methods = preset.hydra.sweeper.params.method.split(",")
    assert set(methods) <= set(option_names("method")) and len(methods) == 4
    assert preset.hydra.sweeper.params.seed == "0,1,2"


def test_a_sweep_over_methods_labels_every_run(tmp_path):
    import subprocess
    import sys

    from fedsim.results import load
    from fedsim.statistics import summary_table

    command = [sys.executable, "-m", "fedsim.cli", "-m", "method=fedavg,fedprox_mu1", "seed=0,1", "num_clients=4",
               "num_rounds=1", "client.local_epochs=1", f"hydra.sweep.dir={tmp_path}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frame = load(tmp_path)
    by_run = frame.groupby("run").first()
    assert sorted(by_run["method"]) == ["fedavg", "fedavg", "fedprox_mu1", "fedprox_mu1"]
    assert set(by_run.loc[by_run["method"] == "fedprox_mu1", "strategy.proximal_mu"]) == {1}
    table = summary_table(frame, "accuracy", by="method")
    assert list(table.index) == ["fedavg", "fedprox_mu1"] and list(table["n"]) == [2, 2]
