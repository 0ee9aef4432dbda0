"""The package's layers: import-linter's contracts hold and catch a break, no import cycles, no import side effects."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def module_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, counting imports anywhere (inside functions too)."""
    files = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path

    def project_module(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        imported: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(project_module(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    imported.add(full if full in files else project_module(base))
        graph[module] = {m for m in imported if m is not None and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    graph = module_graph(SRC)
    assert "encdec_pl.runtime.config" in graph and "hydra_plugins.encdec_pl_launchers.launchers" in graph
    # The check sees imports inside functions: the launchers import encdec_pl only there.
    assert "encdec_pl.runtime.sweep.job" in graph["hydra_plugins.encdec_pl_launchers.launchers"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    graph = module_graph(SRC)
    graph["encdec_pl.errors"] = graph["encdec_pl.errors"] | {"encdec_pl.models.base"}
    assert any("encdec_pl.errors" in c and "encdec_pl.models.base" in c for c in cycles(graph))


def test_importing_an_entry_point_has_no_side_effects() -> None:
    """Resolvers, launchers and warnings filters are the run prologue's business, not the import's."""
    code = (
        "import logging, warnings\n"
        # What the third-party libraries install themselves when imported is theirs.
        "import torch, torchvision, lightning.pytorch, hydra, omegaconf, matplotlib.pyplot, rich, wandb\n"
        "import hydra_plugins.hydra_ray_launcher.ray_launcher\n"
        "import hydra_plugins.hydra_submitit_launcher.submitit_launcher\n"
        "before = list(warnings.filters)\n"
        "import encdec_pl.train, encdec_pl.evaluate, encdec_pl.classifier, encdec_pl.dashboard\n"
        "import encdec_pl.bench.__main__\n"
        "from hydra.core.plugins import Plugins\n"
        "from omegaconf import OmegaConf\n"
        "assert not OmegaConf.has_resolver('new_dir'), 'resolvers registered at import'\n"
        "assert warnings.filters == before, 'warnings filters installed at import'\n"
        "assert not logging.getLogger('lightning.pytorch.utilities.rank_zero').filters, 'log filter at import'\n"
        "from encdec_pl.runtime.cli import prepare_process\n"
        "from hydra_plugins.encdec_pl_launchers.launchers import LAUNCHERS\n"
        "prepare_process(LAUNCHERS)\n"
        "assert OmegaConf.has_resolver('new_dir') and warnings.filters != before\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.launcher import Launcher\n"
        "names = {p.__name__ for p in Plugins.instance().discover(Launcher)}\n"
        "assert {'RayLauncher', 'SlurmLauncher'} <= names, names\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def run_lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root / "src"), "HOME": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def source_copy(tmp_path: Path) -> Path:
    """src/ and pyproject.toml (the contracts) copied to a folder where lint-imports analyses the copy."""
    shutil.copytree(SRC, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_lint_imports_keeps_the_contracts(source_copy: Path) -> None:
    result = run_lint_imports(source_copy)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "offending_import", "broken"),
    [
        ("encdec_pl/models/base.py", "import omegaconf", "The library imports neither Hydra nor OmegaConf"),
        ("encdec_pl/networks/image.py", "from hydra.utils import instantiate", "The library imports neither"),
        ("encdec_pl/models/ede.py", "from encdec_pl.runtime import config", "Layers"),
        ("encdec_pl/runtime/history.py", "from encdec_pl import train", "Nothing imports an entry point"),
        ("encdec_pl/evaluate.py", "from encdec_pl.report import main", "Layers"),
    ],
)
def test_lint_imports_fails_when_a_contract_is_broken(
    source_copy: Path, module: str, offending_import: str, broken: str
) -> None:
    path = source_copy / "src" / module
    # In a function, where a hidden import would go: the contracts count those as well.
    path.write_text(path.read_text() + f"\n\ndef _offending() -> None:\n    {offending_import}  # noqa\n")
    result = run_lint_imports(source_copy)
    assert result.returncode != 0
    summary = result.stdout.split("Broken contracts")[0]
    assert any(line.startswith(broken) and line.endswith("BROKEN") for line in summary.splitlines()), summary
