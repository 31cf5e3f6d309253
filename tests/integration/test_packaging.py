"""The package as pip builds and installs it: one `sshkeep` package, beside anything else.

A wheel holding generic top-level packages (`common`, `daemon`, `shim`) overwrote the PyPI package
python-daemon (which ships `daemon/`) and broke under any PYTHONPATH holding a `common/` folder.
These tests use real pip in a fresh venv: python-daemon first, then this repository, as a user
installs them. The venv is made once for the module; the uninstall test runs last.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.instance import REPO, clean_env, new_instance

PIP_TIMEOUT = 900  # a cold pip cache downloads every dependency once


@dataclass
class Venv:
    root: Path
    home: Path  # the SSHKEEP_HOME its commands use

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def sshkeep(self) -> Path:
        return self.root / "bin" / "sshkeep"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env("VIRTUAL_ENV", SSHKEEP_HOME=str(self.home), **extra)

    def run(self, *argv: str | Path, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run a command from the venv (cwd: /, so no folder of this repository is importable)."""
        return subprocess.run(
            [str(a) for a in argv], env=self.env(**extra), cwd="/", capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(self.python, "-m", "pip", *args, timeout=PIP_TIMEOUT)
        assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done


def project_version() -> str:
    """The version pyproject declares: dynamic, read by hatchling from the file it names."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    source = REPO / project["tool"]["hatch"]["version"]["path"]
    found = re.search(r'^__version__ = "([^"]+)"$', source.read_text(), re.MULTILINE)
    assert found, source
    return found.group(1)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT, cwd=dist,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (built,) = dist.glob("sshkeep-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    """A fresh venv with python-daemon installed first, then this repository with its dependencies."""
    root = tmp_path_factory.mktemp("venv")
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    # The daemon this venv's commands might start is cleaned up like any test instance's.
    inst = new_instance({})
    env = Venv(root, inst.home)
    try:
        env.pip("install", "-q", "python-daemon")
        env.pip("install", "-q", str(REPO))
        yield env
    finally:
        inst.destroy()


def test_wheel_holds_only_the_sshkeep_package(wheel: Path) -> None:
    version = project_version()
    assert wheel.name.startswith(f"sshkeep-{version}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    strays = [n for n in names if not n.startswith(("sshkeep/", f"sshkeep-{version}.dist-info/"))]
    assert not strays, strays
    assert {"sshkeep/__init__.py", "sshkeep/__main__.py", "sshkeep/py.typed"} <= set(names)
    assert {n.split("/")[1] for n in names if n.startswith("sshkeep/") and n.count("/") > 1} >= {
        "common",
        "daemon",
        "shim",
    }


def test_python_daemon_keeps_working_beside_sshkeep(venv: Venv) -> None:
    probe = venv.run(venv.python, "-c", "import daemon; daemon.DaemonContext; print(daemon.__file__)")
    assert probe.returncode == 0, probe.stderr
    where = Path(probe.stdout.strip())
    assert where.is_relative_to(venv.root) and where.parts[-3:] == ("site-packages", "daemon", "__init__.py")

    # `sshkeep status` runs: no daemon serves this home, so it says so (exit 1), as sshkeep.
    status = venv.run(venv.sshkeep, "status", "--json")
    assert status.returncode == 1, status.stderr
    assert "Traceback" not in status.stderr and "ImportError" not in status.stderr, status.stderr
    report = json.loads(status.stdout)
    assert report["status"] == "not running" and report["socket"].startswith("/")
    text = venv.run(venv.sshkeep, "status")
    assert text.returncode == 1 and "not running" in text.stdout, text.stdout + text.stderr


def test_foreign_common_daemon_and_shim_packages_on_pythonpath_change_nothing(
    venv: Venv, tmp_path: Path
) -> None:
    for name in ("common", "daemon", "shim"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('the foreign {name} was imported')\n"
        )
    for argv in (
        [venv.sshkeep, "--help"],
        [venv.python, "-m", "sshkeep", "--help"],
        [venv.sshkeep, "status"],
    ):
        done = venv.run(*argv, PYTHONPATH=str(tmp_path))
        assert "foreign" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.returncode == (1 if argv[-1] == "status" else 0), done.stdout + done.stderr
    helped = venv.run(venv.sshkeep, "--help", PYTHONPATH=str(tmp_path))
    assert helped.stdout.startswith("usage: sshkeep") and "mcp" in helped.stdout


def test_python_dash_m_sshkeep(venv: Venv) -> None:
    direct = venv.run(venv.sshkeep, "--help")
    module = venv.run(venv.python, "-m", "sshkeep", "--help")
    assert module.returncode == 0, module.stderr
    assert module.stdout == direct.stdout
    assert "daemon" in module.stdout and "status" in module.stdout


async def test_one_version_everywhere(venv: Venv) -> None:
    version = project_version()
    shown = venv.run(venv.sshkeep, "--version")
    assert (shown.returncode, shown.stdout.strip()) == (0, f"sshkeep {version}"), shown.stderr
    code = "import importlib.metadata as m, sshkeep; print(sshkeep.__version__, m.version('sshkeep'))"
    installed = venv.run(venv.python, "-c", code)
    assert installed.stdout.split() == [version, version], installed.stderr

    params = StdioServerParameters(command=str(venv.sshkeep), args=["mcp"], env=venv.env(), cwd="/")
    async with Client(params, mode="legacy") as c:  # the initialize handshake
        info = c.server_info
        assert info is not None
        assert (info.name, info.version) == ("sshkeep", version)
    async with Client(params) as c:  # and what a newer client negotiates
        assert c.server_info is not None and c.server_info.version == version


def test_uninstalling_sshkeep_leaves_python_daemon_whole(venv: Venv) -> None:
    """Last in the module: it removes sshkeep from the shared venv."""
    venv.pip("uninstall", "-y", "sshkeep")
    gone = venv.run(venv.python, "-c", "import sshkeep")
    assert gone.returncode == 1 and "No module named 'sshkeep'" in gone.stderr
    probe = venv.run(venv.python, "-c", "import daemon, daemon.daemon; daemon.DaemonContext; print('ok')")
    assert (probe.returncode, probe.stdout.strip()) == (0, "ok"), probe.stderr
    assert not venv.sshkeep.exists()
