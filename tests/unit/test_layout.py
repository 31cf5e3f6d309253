"""The package's layout, read from its imports: no import circles, and each room imports only what
it may.

- No import circle anywhere in `sshkeep`. Module-level imports count, and so do imports under
  `if TYPE_CHECKING:`: a circle that only the type checker follows is still two modules that
  cannot be understood (or moved) one without the other. Imports inside functions do not count:
  they run later, when every module is loaded (the CLI's lazy import of the daemon is one).
- Nothing under `sshkeep.common` imports `sshkeep.daemon` or `sshkeep.shim`, not even lazily:
  common is the layer both sides stand on.
- `sshkeep.shim.cli` (the human CLI) imports no daemon internals; its one daemon import is the
  `daemon` subcommand's lazy import of `sshkeep.daemon.server`.
- No module imports the repository's folder names (`common`, `daemon`, `shim`) as top-level
  packages: installed, they are `sshkeep.*`, and `daemon` is another project's name on PyPI.

The imports are read with `ast` from the installed package (the one the tests run against); the
checks are plain functions of a package directory, so the last tests show each one catching a
bad layout in a small package written for the purpose.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import sshkeep

INSTALLED = Path(sshkeep.__file__).resolve().parent
SOURCE_FOLDERS = ("common", "daemon", "shim")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted name of the imported module (or of the package a name came from)
    line: int
    module_level: bool  # runs when the importer is imported (not inside a function)
    type_checking: bool  # under `if TYPE_CHECKING:`

    def where(self) -> str:
        how = "TYPE_CHECKING " if self.type_checking else "" if self.module_level else "lazy "
        return f"{self.importer}:{self.line} ({how}import {self.target})"


def modules_of(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py below the package directory `root`."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    body: list[ast.stmt], module_level: bool, type_checking: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import statement in `body`, with whether it runs at import time and under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, module_level, type_checking
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(node.body, False, type_checking)
        elif isinstance(node, ast.If):
            yield from _walk(node.body, module_level, type_checking or _is_type_checking(node.test))
            yield from _walk(node.orelse, module_level, type_checking)
        else:
            # Classes, try/with/for/while/match blocks: their bodies run where they stand.
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler | ast.match_case) else [child]
                    yield from _walk(inner, module_level, type_checking)


def imports_of(root: Path) -> list[Import]:
    """Every import in the package at `root`, resolved to dotted names (relative imports included)."""
    modules = modules_of(root)
    found: list[Import] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for node, module_level, type_checking in _walk(tree.body, True, False):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in dict.fromkeys(targets):
                found.append(Import(name, target, node.lineno, module_level, type_checking))
    return found


def import_cycles(root: Path) -> list[list[Import]]:
    """The import circles among the package's modules, each as the imports that close it.

    An edge is an import that runs when its importer is imported, TYPE_CHECKING ones included; it
    leads to the imported module and to the packages above it that the importer is not inside (those
    are loaded before the importer starts, so they add nothing). One circle is reported per strongly
    connected group of modules, so a tangle shows as one finding with a concrete path through it.
    """
    modules = modules_of(root)
    edges: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in imports_of(root):
        if not imp.module_level:
            continue
        parts = imp.target.split(".")
        for i in range(len(parts), 0, -1):
            target = ".".join(parts[:i])
            # The importer's own packages (and, for a package, itself) are loading already.
            own = imp.importer.startswith(target + ".") or (i < len(parts) and target == imp.importer)
            if target in modules and not own:
                edges[imp.importer].setdefault(target, imp)

    # Tarjan's strongly connected components (iterative: no recursion limit to worry about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    groups.append(sorted(group))

    cycles = []
    for group in groups:
        members = set(group)
        first = group[0]
        # The shortest way from `first` back to itself inside the group (breadth first).
        came: dict[str, Import] = {}
        queue = [first]
        while queue and first not in came:
            node = queue.pop(0)
            for child, imp in edges[node].items():
                if child in members and child not in came:
                    came[child] = imp
                    queue.append(child)
        path = [came[first]]
        while path[-1].importer != first:
            path.append(came[path[-1].importer])
        cycles.append(path[::-1])
    return cycles


def describe(cycle: list[Import]) -> str:
    """`a -> b -> a`, then the import statement behind each arrow."""
    chain = " -> ".join([imp.importer for imp in cycle] + [cycle[0].importer])
    return chain + "".join(f"\n    {imp.where()}" for imp in cycle)


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def common_violations(root: Path) -> list[str]:
    """Imports of the daemon or the shim by anything in sshkeep.common, lazy ones included."""
    return [
        imp.where()
        for imp in imports_of(root)
        if _under(imp.importer, "sshkeep.common")
        and (_under(imp.target, "sshkeep.daemon") or _under(imp.target, "sshkeep.shim"))
    ]


def cli_violations(root: Path) -> list[str]:
    """Daemon imports by the human CLI, except a lazy import of sshkeep.daemon.server."""
    return [
        imp.where()
        for imp in imports_of(root)
        if _under(imp.importer, "sshkeep.shim.cli")
        and _under(imp.target, "sshkeep.daemon")
        and (imp.module_level or imp.target != "sshkeep.daemon.server")
    ]


def top_level_folder_imports(root: Path) -> list[str]:
    """Imports of `common`, `daemon` or `shim` as top-level packages (the repository's folders)."""
    return [imp.where() for imp in imports_of(root) if imp.target.split(".")[0] in SOURCE_FOLDERS]


# --- the installed package -----------------------------------------------------------------------------


def test_the_installed_package_is_all_of_the_source_tree() -> None:
    """Every module of common/, daemon/ and shim/ is installed, so the checks below read them all."""
    repo = Path(__file__).resolve().parents[2]
    installed = modules_of(INSTALLED)
    for folder in SOURCE_FOLDERS:
        # shim/_package holds what becomes sshkeep/__init__.py and __main__.py.
        source = {name for name in modules_of(repo / folder) if not name.startswith("shim._package")}
        assert source, folder
        missing = {name for name in source if f"sshkeep.{name}" not in installed}
        assert not missing, f"not installed (pip install --force-reinstall --no-deps .): {missing}"
    assert "sshkeep.daemon.server" in installed and "sshkeep.shim.cli.main" in installed


def test_no_import_circles() -> None:
    cycles = import_cycles(INSTALLED)
    assert not cycles, f"{len(cycles)} import circle(s):\n" + "\n".join(describe(c) for c in cycles)


def test_common_imports_neither_daemon_nor_shim() -> None:
    bad = common_violations(INSTALLED)
    assert not bad, "sshkeep.common must not import sshkeep.daemon or sshkeep.shim:\n" + "\n".join(bad)


def test_cli_imports_no_daemon_internals() -> None:
    bad = cli_violations(INSTALLED)
    assert not bad, (
        "sshkeep.shim.cli may import the daemon only lazily, and only sshkeep.daemon.server:\n"
        + "\n".join(bad)
    )


def test_nothing_imports_the_source_folders_by_their_own_names() -> None:
    bad = top_level_folder_imports(INSTALLED)
    assert not bad, "import sshkeep.common/daemon/shim, never common/daemon/shim:\n" + "\n".join(bad)


# --- the checks catch what they are for -----------------------------------------------------------------


def make_package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `sshkeep` in tmp_path holding `files` (paths relative to it)."""
    root = tmp_path / "sshkeep"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return root


def test_a_type_checking_circle_is_found_and_shown(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "daemon/sessions/manager.py": "from sshkeep.daemon.sessions.commands import Commands\n",
            "daemon/sessions/commands.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from sshkeep.daemon.sessions.manager import SessionManager
            """,
        },
    )
    (cycle,) = import_cycles(root)
    assert [imp.importer for imp in cycle] == [
        "sshkeep.daemon.sessions.commands",
        "sshkeep.daemon.sessions.manager",
    ]
    text = describe(cycle)
    assert "sshkeep.daemon.sessions.commands:4 (TYPE_CHECKING import sshkeep.daemon.sessions.manager)" in text
    assert "sshkeep.daemon.sessions.manager:1 (import sshkeep.daemon.sessions.commands)" in text


def test_a_longer_circle_through_relative_imports_and_packages(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "daemon/api/app.py": "from . import admin\n",
            "daemon/api/admin.py": "from ..files import transfers\n",
            "daemon/files/__init__.py": "from .sidechannel import SideChannels\n",
            "daemon/files/sidechannel.py": "from sshkeep.daemon.api.app import build_app\n",
            "daemon/files/transfers.py": "",
        },
    )
    (cycle,) = import_cycles(root)
    # admin imports sshkeep.daemon.files.transfers, which first loads sshkeep.daemon.files.
    assert [imp.importer for imp in cycle] == [
        "sshkeep.daemon.api.admin",
        "sshkeep.daemon.files",
        "sshkeep.daemon.files.sidechannel",
        "sshkeep.daemon.api.app",
    ]


def test_lazy_imports_make_no_circle(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "a.py": "import sshkeep.b\n",
            "b.py": "def later():\n    import sshkeep.a\n",
            "c.py": "class C:\n    import sshkeep.c as me\n",  # a class body runs at import time
        },
    )
    assert [[imp.importer for imp in c] for c in import_cycles(root)] == [["sshkeep.c"]]


def test_common_importing_the_daemon_even_lazily_is_caught(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "common/terminal/keys.py": "from sshkeep.daemon.sessions.tmux import quote\n",
            "common/client.py": "def f():\n    from sshkeep.shim import mcp_server\n",
            "common/paths.py": "from sshkeep.common import errors\n",
            "common/errors.py": "",
            "shim/mcp_server.py": "",
        },
    )
    assert common_violations(root) == [
        "sshkeep.common.client:2 (lazy import sshkeep.shim.mcp_server)",
        "sshkeep.common.terminal.keys:1 (import sshkeep.daemon.sessions.tmux)",
    ]


def test_cli_may_only_lazily_import_the_daemon_server(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "shim/cli/main.py": "def daemon():\n    from sshkeep.daemon.server import serve\n",
            "shim/cli/service.py": "def tmux():\n    from sshkeep.daemon.sessions.tmux import TMUX_CONF\n",
            "shim/cli/human.py": "from sshkeep.daemon import server\n",
            "daemon/server.py": "",
            "daemon/sessions/tmux.py": "",
        },
    )
    assert cli_violations(root) == [
        "sshkeep.shim.cli.human:1 (import sshkeep.daemon.server)",
        "sshkeep.shim.cli.service:2 (lazy import sshkeep.daemon.sessions.tmux)",
    ]


@pytest.mark.parametrize("line", ["import daemon", "from common.errors import X", "import shim.cli.main"])
def test_top_level_folder_names_are_caught(tmp_path: Path, line: str) -> None:
    root = make_package(tmp_path, {"shim/tools.py": line + "\n"})
    (found,) = top_level_folder_imports(root)
    assert found.startswith("sshkeep.shim.tools:1 (import ")
