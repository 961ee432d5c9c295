"""The package's layering, read from the imports of every module (``ast``, function-level imports included).

- the core (``her2radiomics/*.py``) imports nothing from ``her2radiomics.commands``, ``HER2RadiomicsLib``, Qt or
  Slicer;
- ``her2radiomics/commands/*`` import the core; nothing but ``cli.py`` (and the commands themselves) imports them;
- ``HER2RadiomicsLib`` imports the core and never ``her2radiomics.commands``;
- the core's import graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "HER2Radiomics"
CORE = ROOT / "her2radiomics"
COMMANDS = CORE / "commands"
LIB = ROOT / "HER2RadiomicsLib"
GUI_PREFIXES = ("qt", "slicer", "vtk", "ctk", "mrml", "HER2RadiomicsLib")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "lazy_module", "import_module") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                names.add(str(arg.value))
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                names.add(str(arg.values[0].value).rstrip("."))  # f"her2radiomics.commands.{name}"
    return names


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _core_modules() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def _is_commands(name: str) -> bool:
    return name == "her2radiomics.commands" or name.startswith("her2radiomics.commands.")


def test_core_imports_nothing_above_it():
    bad = []
    for path in _core_modules():
        if path.name in ("cli.py", "__main__.py"):
            continue  # the CLI is the commands' one entry point
        for name in imported_modules(path):
            if _is_commands(name) or name.split(".")[0].lower().startswith(GUI_PREFIXES):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "the core must not import the CLI commands, the Slicer layer or Qt:\n" + "\n".join(bad)


def test_only_the_cli_imports_commands():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent == COMMANDS or path == CORE / "cli.py":
            continue
        for name in imported_modules(path):
            if _is_commands(name):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "only her2radiomics/cli.py may import her2radiomics.commands:\n" + "\n".join(bad)


def test_commands_and_slicer_layer_import_the_core():
    for folder in (COMMANDS, LIB):
        used = set().union(*(imported_modules(p) for p in folder.glob("*.py")))
        assert any(n.startswith("her2radiomics.") and not _is_commands(n) for n in used), folder


def core_cycles() -> list[list[str]]:
    """Cycles of the core's import graph (modules of her2radiomics/*.py), each as [a, b, ..., a]."""
    mods = {f"her2radiomics.{p.stem}": p for p in _core_modules() if p.stem != "__init__"}
    graph = {m: sorted({n for n in imported_modules(p) if n in mods and n != m}) for m, p in mods.items()}
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_core_import_graph_has_no_cycle():
    cycles = core_cycles()
    assert not cycles, "import cycle(s) in the core:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_are_read_from_function_bodies():
    """The reader sees imports inside functions (where the core defers its heavy imports) and the modules named
    to ``importlib.import_module`` / ``lazy_module`` (as the CLI loads its commands)."""
    assert "her2radiomics.commands" in imported_modules(CORE / "cli.py")
    assert "sklearn.model_selection" in imported_modules(CORE / "splits.py")  # imported inside make_splits
