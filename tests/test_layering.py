"""Layering: a stage imports only the shared base and the stages below it (docs/ARCHITECTURE.md).

Two checks: every import statement in the source (module level or inside a function, so lazy imports
count too), and, in a fresh interpreter per stage, importing all of a stage's modules loads no stage
above it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ssinfnet

#: The stages, lowest first; a stage may import the shared base and any stage before it.
STAGES = ("data", "models", "training", "inference", "evaluation", "analysis", "report", "workflows")
#: Imported by every stage; imports no stage.
BASE = ("core", "errors", "fileio")
PACKAGE = Path(ssinfnet.__file__).parent


def layer(module: str) -> str | None:
    """The stage or base part (second name) of an ``ssinfnet.`` module; None for anything else."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ssinfnet" and len(parts) > 1 else None


def imported_modules(path: Path) -> set[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if base == "ssinfnet")
    return names


def allowed(source: str) -> set[str]:
    if source in BASE:
        return set(BASE)
    return set(BASE) | set(STAGES[: STAGES.index(source) + 1])


def test_every_package_is_placed_in_the_layers():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "cli"}
    assert packages | modules <= set(STAGES) | set(BASE) | {"weights"}, "place the new package in STAGES or BASE"


def test_no_import_reaches_up_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source not in STAGES and source not in BASE:
            continue  # ssinfnet/cli.py and __init__: the command line sits above every stage
        for name in sorted(imported_modules(path)):
            target = layer(name)
            if target is not None and target in STAGES + BASE and target not in allowed(source):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("stage", STAGES[:-1])
def test_importing_a_stage_loads_no_stage_above_it(stage):
    """Every module of the stage, imported in a fresh interpreter: which stages ended up in sys.modules."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"import ssinfnet.{stage} as package\n"
        "for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules if m.startswith('ssinfnet.')})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    above = set(STAGES[STAGES.index(stage) + 1:])
    assert not loaded & above, f"importing ssinfnet.{stage} loads {sorted(loaded & above)}"
