"""Lambda entry points: parse, authorize, call the domain, map errors.

Importing any Powertools resolver runs `aws_lambda_powertools.event_handler/__init__.py`,
which imports every resolver it has (AppSync with asyncio, Bedrock, VPC Lattice, ...):
about a tenth of a cold start for code no function here runs. So before any handler
module is imported, that package is registered without running its `__init__`; its
submodules import as usual, and a name asked of the package itself is taken from the
submodule that defines it (the whole `__init__` runs only for a name not listed here).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

_EVENT_HANDLER = "aws_lambda_powertools.event_handler"
# Names of the package that Powertools' own modules and ours import from it.
_DEFINED_IN = {
    "ALBResolver": "api_gateway",
    "APIGatewayHttpResolver": "api_gateway",
    "ApiGatewayResolver": "api_gateway",
    "APIGatewayRestResolver": "api_gateway",
    "CORSConfig": "api_gateway",
    "Response": "api_gateway",
    "Depends": "depends",
    "DependencyResolutionError": "depends",
    "Request": "request",
}


def _lean_event_handler_package() -> None:
    if _EVENT_HANDLER in sys.modules:
        return
    spec = importlib.util.find_spec(_EVENT_HANDLER)
    if spec is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)
    state = {"loaded": False}

    def __getattr__(name: str):
        submodule = _DEFINED_IN.get(name)
        if submodule is not None:
            value = getattr(importlib.import_module(f"{_EVENT_HANDLER}.{submodule}"), name)
            setattr(package, name, value)
            return value
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{_EVENT_HANDLER}.{name}") is not None:
            return importlib.import_module(f"{_EVENT_HANDLER}.{name}")  # a submodule
        if not state["loaded"]:
            state["loaded"] = True
            spec.loader.exec_module(package)  # everything else: the package as shipped
            return getattr(package, name)
        raise AttributeError(f"module {_EVENT_HANDLER!r} has no attribute {name!r}")

    package.__getattr__ = __getattr__
    sys.modules[_EVENT_HANDLER] = package
    parent = importlib.import_module("aws_lambda_powertools")
    parent.event_handler = package


_lean_event_handler_package()
