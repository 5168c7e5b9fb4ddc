"""Import a package's names from their own submodules, without running its `__init__`.

Some packages import everything they have from their `__init__`, so that naming one class
loads them whole:

- Powertools' `event_handler` imports every resolver (AppSync with asyncio, Bedrock, VPC
  Lattice, ...) to give the HTTP resolver;
- Powertools' `utilities.data_classes` imports the event classes of some thirty event
  sources, for the resolver's three;
- `phonenumbers` imports its as-you-type formatter, matcher and short-number tables, for
  a signup's parse, check and format.

Together about a tenth of an HTTP function's cold start, and a third of what signup's
phone check costs, for code no function here runs. `install()` adds a finder that imports
these packages lean: nothing else changes until one of them is imported, its submodules
import as usual, and a name asked of the package comes from the submodule its `__init__`
takes it from. A name the `__init__` does not import from a submodule runs the whole
`__init__`, as shipped, so anything that needs the package whole still gets it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType

LEAN_PACKAGES = frozenset({
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.data_classes",
    "phonenumbers",
})

# `from .module import A, B` / `from package.module import (A, B as C)` in an __init__.py.
_FROM_IMPORT = re.compile(r"^from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)


def exports(package: str, source: str) -> dict[str, tuple[str, str]]:
    """Name → (submodule of `package`, its name there) that the `__init__` imports it as."""
    found = {}
    for origin, names in _FROM_IMPORT.findall(source):
        module = f"{package}{origin}" if origin.startswith(".") else origin
        if not module.startswith(f"{package}."):
            continue
        for name in names.strip("()").replace("\n", " ").split(","):
            parts = name.split()  # "A" or "A as B"
            if parts and parts[0] != "*":
                found[parts[-1]] = (module, parts[0])
    return found


class _LeanLoader(importlib.abc.Loader):
    def __init__(self, shipped: importlib.abc.Loader) -> None:
        self.shipped = shipped

    def create_module(self, spec):
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        with open(module.__spec__.origin, encoding="utf-8") as f:
            names = exports(name, f.read())
        whole = {"loaded": False}
        shipped = self.shipped

        def __getattr__(attribute: str):
            if attribute in names:
                submodule, original = names[attribute]
                value = getattr(importlib.import_module(submodule), original)
            elif importlib.util.find_spec(f"{name}.{attribute}") is not None:
                value = importlib.import_module(f"{name}.{attribute}")
            elif not whole["loaded"]:
                whole["loaded"] = True
                shipped.exec_module(module)  # the package as shipped
                return getattr(module, attribute)
            else:
                raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
            setattr(module, attribute, value)
            return value

        module.__getattr__ = __getattr__


class _LeanFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in LEAN_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not spec.origin \
                or spec.submodule_search_locations is None:
            return None  # not a package from source: import it as usual
        spec.loader = _LeanLoader(spec.loader)
        return spec


def install() -> None:
    """From now on, the packages in LEAN_PACKAGES that are not imported yet import lean."""
    if not any(isinstance(f, _LeanFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LeanFinder())
