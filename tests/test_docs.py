"""The README stays a front door and the docs stay true to the code they name.

What would go stale first when code moves: a link to a page or a heading, a `python -m` command,
a dotted name (`encdec_pl.runtime.callbacks.FaultHandler`), a source path, a cited test.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
PAGES = sorted((REPO_ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]
README_LIMIT = 12 * 1024  # bytes (issue 10: at most 12 KB): the front door stays short; details go to docs/

LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(h) for h in HEADING.findall(FENCE.sub("", _read(path)))}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO_ROOT)) for p in paths]


def test_readme_is_a_front_door() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes (limit {README_LIMIT}): move detail into docs/"
    # Every docs page can be reached from the README by following links.
    reached, todo = set(), [README.resolve()]
    while todo:
        page = todo.pop()
        for target in LINK.findall(_read(page)):
            linked = (page.parent / target.partition("#")[0]).resolve()
            if linked.suffix == ".md" and linked.is_file() and linked not in reached:
                reached.add(linked)
                todo.append(linked)
    unlinked = [p.name for p in PAGES if p.resolve() not in reached]
    assert not unlinked, (
        f"docs pages no link from README.md leads to: {unlinked}; link them (README's Documentation table)"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_relative_links_and_anchors_exist(document: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", _read(document))):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists():
            broken.append(f"{target} (no file {linked.relative_to(REPO_ROOT)})")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{document.name}: broken links: {broken}"


def _code_spans(text: str) -> list[str]:
    """Inline code and the lines of code blocks: where commands, names and paths are written."""
    return re.findall(r"`([^`\n]+)`", FENCE.sub("", text)) + [
        line for block in FENCE.findall(text) for line in block.splitlines()
    ]


def _all_spans() -> list[tuple[str, str]]:
    return [(doc.name, span) for doc in DOCUMENTS for span in _code_spans(_read(doc))]


def test_every_python_m_module_exists() -> None:
    modules = {m for _, span in _all_spans() for m in re.findall(r"python -m (encdec_pl(?:\.\w+)*)", span)}
    assert "encdec_pl.train" in modules  # the pattern still finds the commands
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, f"documented `python -m` modules that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return False
        return True
    return False


def test_every_dotted_encdec_pl_name_resolves() -> None:
    names = {
        n
        for _, span in _all_spans()
        for n in re.findall(r"(?<![\w/.-])(encdec_pl(?:\.[A-Za-z_]\w*)+)", span)
        if not n.startswith("encdec_pl.conf")
    }
    assert any(n.startswith("encdec_pl.runtime") for n in names)
    stale = sorted(n for n in names if not _resolves(n))
    assert not stale, f"names in the docs that the package does not have: {stale}"


def test_every_source_path_and_cited_test_exists() -> None:
    missing = []
    for doc, span in _all_spans():
        for path in re.findall(r"(?<![\w/.-])((?:src/|tests/|scripts/|conf/|notebooks/|encdec_pl/)[\w/.-]*\w)", span):
            candidates = [REPO_ROOT / path, REPO_ROOT / "src" / path]
            if not any(c.exists() for c in candidates):
                missing.append(f"{doc}: {path}")
        for path, test in re.findall(r"(tests/\w+\.py)::(\w+)", span):
            if not (REPO_ROOT / path).exists() or f"def {test}(" not in _read(REPO_ROOT / path):
                missing.append(f"{doc}: {path}::{test}")
    assert not missing, f"paths and tests the docs name that do not exist: {missing}"


def test_the_method_is_cited_inside_the_repository() -> None:
    """The method lives in docs/method.md; nothing points at a copy outside the repository."""
    old = "METHOD" + ".md"
    roots = ["src", "conf", "tests", "notebooks", "scripts", "docs"]
    files = [REPO_ROOT / "README.md", REPO_ROOT / "Makefile"]
    files += [
        p for root in roots for p in (REPO_ROOT / root).rglob("*") if p.suffix in {".py", ".yaml", ".ipynb", ".md"}
    ]
    citing = [str(p.relative_to(REPO_ROOT)) for p in files if p.is_file() and old in _read(p)]
    assert not citing, f"files citing {old} instead of docs/method.md: {citing}"
    assert (REPO_ROOT / "docs" / "method.md").is_file()


def test_the_code_map_names_files_and_folders_that_exist() -> None:
    block = _read(README).split("## Code map", 1)[1].split("```", 2)[1]
    package = REPO_ROOT / "src" / "encdec_pl"
    files = {p.name for p in package.rglob("*.py")}
    folders = {p.name for p in package.rglob("*") if p.is_dir()} | {p.name for p in REPO_ROOT.iterdir() if p.is_dir()}
    named_files = set(re.findall(r"(?<![\w/.-])(\w+\.py)\b", block))
    named_folders = set(re.findall(r"(?<![\w/.-])(\w+)/(?=[\s)])", block))
    assert named_files and named_folders
    assert not named_files - files, f"code map files that do not exist: {sorted(named_files - files)}"
    assert not named_folders - folders, f"code map folders that do not exist: {sorted(named_folders - folders)}"
