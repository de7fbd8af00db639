"""The layout's promises: layers import downwards only, interfaces are implemented, modules stay
small, Hydra stays in the command layer, the tree says what is (no ticket numbers)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qmc
from qmc.analysis import AbstractAnalysis
from qmc.channels import AbstractChannel
from qmc.detectors import AbstractDetector
from qmc.engines.base import AbstractEngine
from qmc.protocols import AbstractProtocol
from qmc.sources import AbstractSource

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "qmc"


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names), at any depth of the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


# Lower layers never import higher ones: components < engines < analysis < optimize < studies.
FORBIDDEN = {
    "random": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "sources": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "entanglement": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "channels": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "detectors": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "freespace": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "protocols": ("qmc.engines", "qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "engines": ("qmc.analysis", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "analysis": ("qmc.optimize", "qmc.studies", "qmc.cli"),
    "repeaters": ("qmc.engines", "qmc.optimize", "qmc.studies", "qmc.cli"),
    "optimize": ("qmc.studies", "qmc.cli"),
    "studies": ("qmc.cli",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_downwards_only(package):
    for path in _modules(package):
        bad = {m for m in _imports(path) if m.startswith(FORBIDDEN[package])}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_hydra_stays_in_the_command_layer():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        bad = {m for m in _imports(path) if m.split(".")[0] in ("hydra", "omegaconf")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"
    # and the library imports without them
    code = "import sys; sys.modules['hydra'] = sys.modules['omegaconf'] = None; import qmc, qmc.studies; qmc.studies.names()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_analysis_and_engines_import_in_either_order():
    for first, second in (("qmc.analysis", "qmc.engines"), ("qmc.engines", "qmc.analysis")):
        code = f"import importlib; importlib.import_module('{first}.base'); importlib.import_module('{second}')"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("interface, package", [
    (AbstractSource, qmc.sources), (AbstractChannel, qmc.channels), (AbstractDetector, qmc.detectors),
    (AbstractProtocol, qmc.protocols), (AbstractEngine, qmc.engines), (AbstractAnalysis, qmc.analysis),
])
def test_every_public_component_implements_its_interface(interface, package):
    classes = [getattr(package, n) for n in package.__all__ if isinstance(getattr(package, n), type)]
    implementations = [c for c in classes if issubclass(c, interface) and c is not interface]
    assert implementations, interface
    for cls in classes:
        if cls.__module__.startswith(package.__name__) and hasattr(cls, "checks") and cls is not interface:
            assert issubclass(cls, interface), f"{cls.__name__} does not derive from {interface.__name__}"


def test_modules_stay_small():
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not big, big


def test_no_ticket_numbers_in_the_tree():
    pattern = re.compile(r"issue ?#[0-9]+|\bissues? [0-9]+\b", re.IGNORECASE)
    roots = [PACKAGE, REPO / "conf", REPO / "docs", REPO / "experiments", REPO / "README.md"]
    found = []
    for root in roots:
        for path in ([root] if root.is_file() else root.rglob("*")) if root.exists() else []:
            if path.is_file() and path.suffix in (".py", ".md", ".yaml", ".sh", ".txt", ".csv"):
                for i, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
                    if pattern.search(line):
                        found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:80]}")
    assert not found, "\n".join(found[:10])
