"""The package as a user installs it, and its layers as docs/architecture.md draws them. No engine needed."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "testbed"

# bottom up: a module may import from its own layer and those below it, never from one above
LAYERS = ["core", "model", "images", "providers", "provision", "stack", "workload", "measure", "results",
          "experiment", "glue"]
GLUE = {"cli", "pytest_plugin", "__main__", "__init__"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "testbed":
        return ""
    if len(parts) == 1 or parts[1] in GLUE:
        return "glue"
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported testbed module) for every import in a module, lazy ones inside functions too."""
    rel = path.relative_to(ROOT).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" for a in node.names]
            out += [(node.lineno, n if (ROOT / n.replace(".", "/")).with_suffix(".py").exists()
                     or (ROOT / n.replace(".", "/")).is_dir() else mod) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(ln, m) for ln, m in out if m.startswith("testbed")]


def layer_violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, mod in _imports(path):
            there = _layer(mod)
            if there and LAYERS.index(there) > LAYERS.index(here):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {mod} ({there}, a layer above)")
    return bad


def test_no_module_imports_from_a_layer_above_its_own():
    assert layer_violations() == []


def test_the_layers_are_the_packages_folders():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS) - {"glue"}, "the layer map (docs/architecture.md) and LAYERS name these folders"
    layer_map = (ROOT / "docs" / "architecture.md").read_text()
    for layer in folders:
        assert f"testbed/{layer}/" in layer_map, f"the layer map in docs/architecture.md lacks testbed/{layer}/"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel of this checkout, installed into a fresh virtual environment outside it. The
    dependencies come from the environment running the tests (a plain path entry: none of its .pth
    files, so not this checkout's editable install), so nothing is downloaded."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves build/ and *.egg-info/ beside the sources it builds
    src = tmp / "src"
    top = {".git", ".venv", "results", "build"}          # the checkout's own, not the package's results/
    shutil.copytree(ROOT, src, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n.endswith(".egg-info") or n == "__pycache__"])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)], check=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("flink_swarm_testbed-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    return venv / "bin" / "python"


def test_the_wheel_holds_the_seed_and_every_image_input(installed, tmp_path):
    code = """
import testbed, testbed.images as img
from testbed.model.topology import load
seed = load("seed")
print(testbed.__file__)
print(seed.name, len(seed.nodes), sorted(seed.clouds))
for r in img.ALL_RECIPES:
    print(r.name, r.tag)          # the tag hashes every input file: each must be in the package
"""
    out = subprocess.run([str(installed), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert str(ROOT) not in lines[0] and "site-packages" in lines[0], lines[0]
    assert lines[1] == "seed 5 ['azure', 'google']"
    assert {ln.split()[0] for ln in lines[2:]} == {"node", "router", "flink", "broker", "driver"}


def test_pytest_in_the_fresh_environment_has_the_plugin_without_this_checkouts_conftest(installed, tmp_path):
    out = subprocess.run([str(installed), "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for option in ("--taskmanagers", "--placements", "--cloud={emulated,real}", "--inventory", "--window",
                   "--results", "--testbed-run"):
        assert option in out.stdout, option
    cli = subprocess.run([str(installed), "-m", "testbed", "run", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0 and "--taskmanagers" in cli.stdout, cli.stderr


def test_the_environment_is_read_in_one_place_and_the_reference_lists_it():
    import re
    from testbed.core import env
    readers = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "testbed").rglob("*.py") if path.name != "env.py"
               for n, line in enumerate(path.read_text().splitlines(), 1)
               if re.search(r"""(environ(\.get)?\s*[\[(]|getenv\()\s*["']FST_""", line)]
    assert readers == [], readers
    reference = (ROOT / "docs" / "reference.md").read_text()      # its "Environment variables" table
    assert [v.name for v in env.VARIABLES if f"| `{v.name}` |" not in reference] == []


def test_the_private_apis_of_dependencies_are_still_there_and_used_nowhere_else():
    import importlib
    import io
    import re
    from pathlib import Path

    from _pytest._io.terminalwriter import TerminalWriter
    from testbed.core import compat
    for module, obj, attr in compat.NAMES:
        assert hasattr(getattr(importlib.import_module(module), obj), attr), (module, obj, attr)
    assert hasattr(TerminalWriter(io.StringIO()), "_current_line")
    import inspect          # the reporter's _tw is an instance's: its constructor still makes it
    import _pytest.terminal
    assert "self._tw" in inspect.getsource(_pytest.terminal.TerminalReporter.__init__)
    root = Path(__file__).resolve().parent.parent / "testbed"
    private = re.compile(r"\.api\._\w|reporter\._tw\b|_custom_adapter|_retrieve_server_version")
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if private.search(p.read_text()))
    assert users == ["core/compat.py"], users


def test_no_name_is_used_that_nothing_defines():
    """pyflakes over the package, the tests and the experiments: a name left behind by a move fails here,
    not in the one slow test that reaches it."""
    from pyflakes.api import checkPath
    from pyflakes.messages import UndefinedName, UndefinedLocal, UndefinedExport
    from pyflakes.reporter import Reporter
    import io
    found = []

    class Collect(Reporter):
        def flake(self, message):
            if isinstance(message, (UndefinedName, UndefinedLocal, UndefinedExport)):
                found.append(str(message))

    reporter = Collect(io.StringIO(), io.StringIO())
    for folder in ("testbed", "tests", "experiments", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            checkPath(str(path), reporter)
    assert found == []
