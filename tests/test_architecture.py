"""The layout's promises, checked: no import cycle, a host side that never imports the
worker or TensorFlow, and light commands that import only what they use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "harness"
#: The worker side: the only modules that may import TensorFlow, Keras and the tracker.
WORKER_SIDE = ("harness.worker", "harness.model", "harness.pruning", "harness.tracking")
HEAVY = ("tensorflow", "keras")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions too).

    ``from pkg import sub`` counts as importing ``pkg.sub`` alone when ``sub`` is one of
    ``modules`` (Python then needs the package only for its path, not its contents).
    """
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{prefix}.{base}" if base else prefix
            names = {f"{base}.{alias.name}" for alias in node.names}
            found.update(names)
            if not names <= modules:
                found.add(base)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    names = frozenset(modules)
    return {name: {m for m in _imports(path, names) if m in modules and m != name}
            for name, path in modules.items()}


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_host_side_never_imports_the_worker_or_tensorflow() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name.startswith(WORKER_SIDE) or "__pycache__" in path.parts:
            continue
        for imported in _imports(path):
            if imported.startswith(WORKER_SIDE) or imported.split(".")[0] in HEAVY:
                offenders.append(f"{name} imports {imported}")
    assert not offenders, offenders


def _loaded_by(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize(("argv", "forbidden"), [
    (["--help"], ("tensorflow", "keras", "codecarbon", "docker", "matplotlib", "scipy",
                  "pydantic", "yaml", "rich")),
    (["validate", "scenarios/demo.yaml"], ("tensorflow", "keras", "docker", "matplotlib",
                                          "scipy", "rich")),
    (["plan", "scenarios/cpu.yaml"], ("tensorflow", "keras", "docker", "matplotlib", "scipy")),
    (["regions", "FRA"], ("tensorflow", "keras", "docker", "matplotlib", "scipy")),
])
def test_light_commands_import_only_what_they_use(argv: list[str], forbidden: tuple) -> None:
    code = ("import contextlib, io\nfrom harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass")
    loaded = _loaded_by(code)
    bad = sorted(m for m in loaded if m.split(".")[0] in forbidden
                 or m.startswith(WORKER_SIDE))
    assert not bad, bad
