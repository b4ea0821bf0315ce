"""fedsim's start-up skips flwr_datasets' plotting imports, and they still work when used."""

import subprocess
import sys

CHECK = """
import sys
import fedsim.apps
print("seaborn" in sys.modules)
from flwr_datasets.visualization import plot_label_distributions
import flwr_datasets
print(callable(plot_label_distributions), "seaborn" in sys.modules)
print(flwr_datasets.visualization.plot_comparison_label_distribution.__module__)
"""


def test_visualization_is_imported_only_when_used():
    output = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert output == [
        "False",  # fedsim itself never pulls in seaborn
        "True", "True",  # the first use imports the real module
        "flwr_datasets.visualization.comparison_label_distribution",
    ]
