"""The deployment artifact as `sam build` makes it, and the Python it needs.

template.yaml builds every function with functions/Makefile and the layers with
layers/Makefile (Metadata `BuildMethod: makefile`), which install wheels for the runtime
(python3.12 on arm64) and byte-compile everything with the runtime's interpreter. So
`sam build` needs a real python3.12 first on PATH (a pyenv shim that refuses to run is
not one): `find_python` finds it, `sam_build` puts it there.

`build_here` runs the same Makefiles with this machine's wheels, so that the bench can
run the built code (with its .pyc) on a machine that is not arm64.

    python -m membership_local.build python   # prints the python3.12 to use, or fails
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import repo_root
from .template import functions, parameter_defaults

RUNTIME_PYTHON = "3.12"
DEFAULT_LAYERS = ("DependenciesLayer",)


class BuildError(RuntimeError):
    pass


def _runs_as(executable: str, version: str) -> bool:
    try:
        proc = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == version


def find_python(version: str = RUNTIME_PYTHON) -> str | None:
    """An interpreter of `version`: $PYTHON312 (for 3.12), python3.12 on PATH if it runs,
    else one of pyenv's versions. None when there is none."""
    name = f"python{version}"
    candidates = [os.environ.get(f"PYTHON{version.replace('.', '')}"), shutil.which(name)]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(pyenv_root) / "versions"
    if versions.is_dir():
        candidates += [str(p / "bin" / name) for p in sorted(versions.glob(f"{version}*"),
                                                              reverse=True)]
    for candidate in candidates:
        if candidate and _runs_as(candidate, version):
            return candidate
    return None


def require_python(version: str = RUNTIME_PYTHON) -> str:
    found = find_python(version)
    if found is None:
        raise BuildError(
            f"no Python {version} found (looked at $PYTHON{version.replace('.', '')}, "
            f"python{version} on PATH and pyenv's versions): the functions run Python "
            f"{version}, and their bytecode is built with it. Install it (e.g. `pyenv "
            f"install {version}`) or set PYTHON{version.replace('.', '')}.")
    return found


def _path_with(python: str) -> str:
    return os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])


def sam_build(build_dir: Path, sam: str | Path, *, timeout: float = 900) -> Path:
    """`sam build` into `build_dir`, with the runtime's python first on PATH."""
    python = require_python()
    env = dict(os.environ, PATH=_path_with(python), SAM_CLI_TELEMETRY="0")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc = subprocess.run(
        [str(sam), "build", "--build-dir", str(build_dir)], cwd=repo_root(), env=env,
        capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BuildError(f"sam build failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}"
                         f"\n{proc.stderr[-4000:]}")
    return build_dir


@dataclass(frozen=True)
class LocalBuild:
    function: Path  # holds membership/, as /var/task
    layers: tuple[Path, ...]  # each holds python/, as /opt

    def sys_path(self) -> list[str]:
        """What Lambda puts on sys.path for this code: the task, then each layer's python/."""
        return [str(self.function), *(str(layer / "python") for layer in self.layers)]


def _machine_arch() -> str:
    machine = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)


def _make(directory: Path, target: str, artifacts: Path, python: str, **variables: str) -> None:
    argv = ["make", "--no-print-directory", "-C", str(directory), target,
            f"ARTIFACTS_DIR={artifacts}", f"PYTHON={python}",
            *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False,
                          env=dict(os.environ, PATH=_path_with(python)))
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def build_here(dest: Path, layers: tuple[str, ...] = DEFAULT_LAYERS,
               function_id: str = "MembersFunction") -> LocalBuild:
    """The Makefiles `sam build` runs, with wheels for this machine instead of arm64."""
    python = require_python()
    root = repo_root()
    dest.mkdir(parents=True, exist_ok=True)
    built = []
    for layer in layers:
        _make(root / "layers", f"build-{layer}", dest / layer, python, ARCH=_machine_arch())
        built.append(dest / layer)
    _make(root / "functions", f"build-{function_id}", dest / "function", python)
    return LocalBuild(function=dest / "function", layers=tuple(built))


# --- what each function loads ----------------------------------------------------------


def _condition(template: Mapping, name: str, parameters: Mapping[str, Any]) -> bool:
    spec = (template.get("Conditions") or {})[name]
    (op, args), = spec.items()
    if op != "Fn::Equals":
        raise ValueError(f"condition {name}: only Fn::Equals is understood here, not {op}")
    values = [parameters.get(a["Ref"]) if isinstance(a, dict) and "Ref" in a else a
              for a in args]
    return str(values[0]) == str(values[1])


def _layer_ids(entry: Any, template: Mapping, parameters: Mapping[str, Any]) -> list[str]:
    if isinstance(entry, dict) and "Ref" in entry:
        return [] if entry["Ref"] == "AWS::NoValue" else [entry["Ref"]]
    if isinstance(entry, dict) and "Fn::If" in entry:
        name, when_true, when_false = entry["Fn::If"]
        chosen = when_true if _condition(template, name, parameters) else when_false
        return _layer_ids(chosen, template, parameters)
    return []  # an ARN: not built here


def function_layers(template: Mapping,
                    parameters: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Function logical id → the logical ids of the layers it loads under `parameters`
    (template defaults for the rest)."""
    values = {**parameter_defaults(template), **(parameters or {})}
    return {
        function_id: [lid for entry in props.get("Layers") or []
                      for lid in _layer_ids(entry, template, values)]
        for function_id, props in functions(template).items()
    }


def tree_bytes(path: Path) -> int:
    """Unzipped size: the bytes of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["python"]:
        try:
            print(require_python())
        except BuildError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
