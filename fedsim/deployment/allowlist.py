"""What a SuperNode agrees to build: fedsim's own classes and functions, and the packages its operator allows.

A SuperNode builds objects from what the server sends: the ``_target_`` of every option
in the run config (dataset, partitioner, model) and the class paths of each message
(client half, optimizer, attack). Importing a module runs its code, so a path is checked
before anything is imported: it must name something inside ``fedsim`` or ``strategies``
(fedsim's own packages) or inside a package the node's operator lists in its node
config (``fedsim-allow="mypkg,other.sub"``), and once imported it must be a class or a
function defined there, so that a path such as ``fedsim.models.os.system`` (a module
fedsim imports, reached through fedsim's namespace) is refused too.
"""

import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any

ALLOW_KEY = "fedsim-allow"  # node config: the packages besides fedsim's that this node builds from
FEDSIM_PACKAGES = ("fedsim", "strategies")
_DOTTED_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")


class NotAllowed(Exception):
    """The server asked a node to build something outside what the node allows (one sentence)."""


def allowed_packages(node_config: Mapping[str, Any]) -> tuple[str, ...]:
    """fedsim's packages and those the node config's ``fedsim-allow`` lists (comma-separated)."""
    listed = str(node_config.get(ALLOW_KEY, "") or "")
    extra = tuple(name.strip() for name in listed.split(",") if name.strip())
    for name in extra:
        if not _DOTTED_PATH.fullmatch(name):
            raise NotAllowed(f"the node config's {ALLOW_KEY} lists {name!r}, which is not a package name.")
    return FEDSIM_PACKAGES + extra


def _inside(path: str, packages: Iterable[str]) -> bool:
    return any(path == package or path.startswith(f"{package}.") for package in packages)


def allowed_object(path: str, packages: tuple[str, ...], setting: str) -> Any:
    """The class or function ``path`` names, if this node allows it; ``NotAllowed`` otherwise.

    ``setting`` says where the path came from (``model._target_``, the message's
    ``client-half``), for the sentence.
    """
    from hydra.utils import get_object

    if not isinstance(path, str) or not _DOTTED_PATH.fullmatch(path) or not _inside(path, packages):
        raise NotAllowed(
            f"{setting}={path} is refused: this node builds only from {', '.join(packages)} "
            f"(its operator allows more with --node-config '{ALLOW_KEY}=\"PACKAGE,...\"')."
        )
    try:
        found = get_object(path)
    except (ImportError, AttributeError, ValueError):
        raise NotAllowed(f"{setting}={path} cannot be imported on this node.") from None
    defined_in = getattr(found, "__module__", None) or ""
    if not (inspect.isclass(found) or inspect.isfunction(found)) or not _inside(defined_in, packages):
        raise NotAllowed(
            f"{setting}={path} is refused: it is not a class or function defined in {', '.join(packages)}."
        )
    return found


def check_targets(node: Any, packages: tuple[str, ...], where: str) -> None:
    """Check every ``_target_`` in ``node`` (nested mappings and lists of a config) against ``packages``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_":
                allowed_object(value, packages, f"{where}._target_")
            else:
                check_targets(value, packages, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            check_targets(value, packages, f"{where}[{index}]")
