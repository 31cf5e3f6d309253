"""The tests run against the installed package, never the source tree.

The repository's `common/`, `daemon/` and `shim/` are only importable as `sshkeep.*` once installed;
a test that reached them through sys.path or PYTHONPATH would test something no user runs (and
`daemon` would shadow, or be shadowed by, the PyPI package python-daemon).
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

import sshkeep

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SOURCE_FOLDERS = ("common", "daemon", "shim")


def test_sshkeep_is_imported_from_the_installed_package() -> None:
    where = Path(sshkeep.__file__).resolve().parent
    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert where.parent in installed, f"sshkeep comes from {where}, not from {installed}"
    assert (where / "daemon" / "server.py").is_file() and (where / "common" / "client.py").is_file()


def test_no_module_of_the_source_tree_is_loaded() -> None:
    folders = [REPO / name for name in SOURCE_FOLDERS]
    loaded = {
        name: file
        for name, module in list(sys.modules.items())
        if (file := getattr(module, "__file__", None))
        and any(Path(file).resolve().is_relative_to(f) for f in folders)
    }
    assert not loaded, loaded


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(TESTS.rglob("*.py"))]


def test_tests_import_the_source_folders_only_as_sshkeep() -> None:
    bad = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            bad += [
                f"{path.relative_to(REPO)}:{node.lineno}: {n}"
                for n in names
                if n.split(".")[0] in SOURCE_FOLDERS
            ]
    assert not bad, bad


def test_tests_never_put_the_repository_on_the_import_path() -> None:
    """No sys.path edits, and no PYTHONPATH built from the repository's own directory."""
    bad = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr == "path" and ast.unparse(node.value) == "sys":
                bad.append(f"{where}: sys.path")
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "PYTHONPATH":
                values = [node.value]
            elif isinstance(node, ast.Dict):
                values = [v for k, v in zip(node.keys, node.values, strict=True) if _is_pythonpath(k)]
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
                values = [node.value] if _is_pythonpath(node.targets[0].slice) else []
            for value in values:
                if any(isinstance(n, ast.Name) and n.id == "REPO" for n in ast.walk(value)):
                    bad.append(f"{where}: PYTHONPATH from REPO")
    assert not bad, bad


def _is_pythonpath(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value == "PYTHONPATH"


def test_test_modules_have_unique_basenames() -> None:
    """pytest imports test modules by basename (rootdir mode): two alike names break collection."""
    tests = Path(__file__).resolve().parent.parent
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
