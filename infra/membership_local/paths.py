"""Where the local stack finds the repository, its npm packages and its state."""
from __future__ import annotations

import os
from pathlib import Path

# Lets tests (and a second stack) keep their own key and stack.json apart from a developer's.
STATE_DIR_ENV = "MEMBERSHIP_LOCAL_HOME"


def repo_root() -> Path:
    """The checkout holding template.yaml: next to this package, else the cwd or a parent."""
    here = Path(__file__).resolve().parents[2]
    if (here / "template.yaml").is_file():
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    raise FileNotFoundError("template.yaml not found next to membership_local or above the cwd")


def state_dir() -> Path:
    configured = os.environ.get(STATE_DIR_ENV)
    path = Path(configured) if configured else repo_root() / ".membership-local"
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_package(name: str) -> Path:
    """Directory of an npm package installed by `npm install` at the repository root."""
    path = repo_root() / "node_modules" / name
    if not path.is_dir():
        raise FileNotFoundError(f"npm package {name!r} is not installed: run `npm install`")
    return path
