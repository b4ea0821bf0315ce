"""Stand-ins for modules that fedsim never uses but its dependencies import at start-up."""

import importlib
import importlib.machinery
import importlib.util
import sys
import types


def defer_submodule(name: str) -> None:
    """Let ``import name`` give a stand-in that imports the real module on first attribute use.

    ``flwr_datasets/__init__.py`` imports its ``visualization`` package, and with it
    seaborn, scipy.stats and pyplot: about a second and a half of every fedsim
    start-up for plots fedsim never draws. Call this before the parent package is
    imported; whoever reads an attribute of the stand-in later (``plot_label_distributions``,
    say) gets the real module's attribute, and the real module replaces the stand-in.
    Nothing happens if the module is already imported or cannot be found.
    """
    parent_name, _, child_name = name.rpartition(".")
    if name in sys.modules or parent_name in sys.modules:
        return
    parent_spec = importlib.util.find_spec(parent_name)  # finds, does not run, the parent package
    if parent_spec is None or not parent_spec.submodule_search_locations:
        return
    spec = importlib.machinery.PathFinder.find_spec(name, parent_spec.submodule_search_locations)
    if spec is None:
        return

    class StandIn(types.ModuleType):
        def __getattr__(self, attribute: str):
            del sys.modules[name]
            real = importlib.import_module(name)
            setattr(sys.modules[parent_name], child_name, real)
            return getattr(real, attribute)

    stand_in = StandIn(name)
    stand_in.__spec__, stand_in.__file__, stand_in.__path__ = spec, spec.origin, spec.submodule_search_locations
    sys.modules[name] = stand_in
