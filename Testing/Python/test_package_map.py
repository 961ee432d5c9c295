"""docs/developer/package_map.md matches the code, and the docs/ pointers in the code lead somewhere.

The map's tables ("Core modules", "Front ends") name one module per row and the public names it owns. Checked:
every module named exists (the core ones also import), defines each name listed for it at its top level (defined
there, not merely imported), and every module of the core package, of ``her2radiomics.commands``,
``HER2RadiomicsLib`` and ``HER2RadiomicsWeb`` has a row. Front-end modules are read, not imported (they need
Slicer's MRML or trame). Separately: every ``docs/<page>.md#<anchor>`` a source file or a page cites names an existing
page and heading (GitHub's heading anchors).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from conftest import PKG_DIR, REPO

MAP = REPO / "docs" / "developer" / "package_map.md"
ROOTS = ("her2radiomics", "HER2RadiomicsLib", "HER2RadiomicsWeb")


def map_rows(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {module: [public names]}} from the map's tables (rows ``| `module` | concept | `a`, `b` |``)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), {})
            continue
        m = re.match(r"\|\s*`([\w.]+)`\s*\|[^|]*\|([^|]*)\|\s*$", line)
        if m and current is not None:
            assert m.group(1) not in current, f"package_map.md names {m.group(1)} twice"
            current[m.group(1)] = re.findall(r"`(\w+)`", m.group(2))
    return sections


def module_file(dotted: str) -> Path:
    """The source file of a module named in the map (``HER2Radiomics`` is the scripted module's file)."""
    parts = dotted.split(".")
    if parts == ["HER2Radiomics"]:
        return PKG_DIR / "HER2Radiomics.py"
    assert parts[0] in ROOTS, f"package_map.md: {dotted} is in none of {ROOTS} (nor HER2Radiomics)"
    base = PKG_DIR.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def top_level_names(path: Path) -> set[str]:
    """Names a file defines at module level (def, class, assignment; also inside top-level if/try blocks)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            body += node.body + node.orelse + getattr(node, "finalbody", [])
            body += [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def modules_on_disk() -> set[str]:
    """Every module of the core package, its commands, HER2RadiomicsLib and HER2RadiomicsWeb, plus the scripted
    module, as dotted names."""
    found = {"HER2Radiomics"}
    for root in ROOTS:
        for f in (PKG_DIR / root).rglob("*.py"):
            rel = f.relative_to(PKG_DIR).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found.add(".".join(parts))
    return found


@pytest.fixture(scope="module")
def rows() -> dict[str, list[str]]:
    sections = map_rows(MAP.read_text(encoding="utf-8"))
    assert {"Core modules", "Front ends"} <= set(sections), f"package_map.md sections: {sorted(sections)}"
    both = {**sections["Core modules"], **sections["Front ends"]}
    assert len(both) == len(sections["Core modules"]) + len(sections["Front ends"]), "a module in both tables"
    return both


def test_map_parser_reads_rows():
    text = "## Core modules\n| module | owns | names |\n|---|---|---|\n| `her2radiomics.x` | a thing | `f`, `G` |\n"
    assert map_rows(text) == {"Core modules": {"her2radiomics.x": ["f", "G"]}}


def test_every_module_in_the_map_exists_and_defines_its_names(rows):
    wrong = []
    for mod, names in rows.items():
        path = module_file(mod)
        if not path.is_file():
            wrong.append(f"{mod}: no file {path.relative_to(REPO)}")
            continue
        missing = [n for n in names if n not in top_level_names(path)]
        if missing:
            wrong.append(f"{mod} does not define {', '.join(missing)}")
    assert not wrong, "docs/developer/package_map.md does not match the code:\n" + "\n".join(wrong)


def test_core_modules_of_the_map_import(rows):
    core = [m for m in rows if m.split(".")[0] == "her2radiomics" and m != "her2radiomics.__main__"]
    for mod in core:
        m = importlib.import_module(mod)
        for name in rows[mod]:
            assert hasattr(m, name), f"{mod}.{name}"


def test_every_module_has_a_row(rows):
    absent = sorted(modules_on_disk() - set(rows))
    assert not absent, f"modules without a row in docs/developer/package_map.md: {absent}"
    core = {m for m in modules_on_disk() if m.startswith("her2radiomics.") and ".commands" not in m} - {
        "her2radiomics.cli", "her2radiomics.__main__"}
    assert core <= set(map_rows(MAP.read_text(encoding="utf-8"))["Core modules"]), "a core module is not in Core"


# ------------------------------------------------------------------------------------------------ doc pointers
def heading_anchors(md: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)
    anchors = set()
    for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return anchors


def test_heading_anchors_follow_github():
    assert heading_anchors(REPO / "docs" / "method.md") >= {
        "model-icc---lasso---logistic-regression", "generalization-decay-index-gdi-and-zones",
        "image-and-regions-shells-in-physical-mm", "her2-categories"}
    assert "regionsjson" in heading_anchors(REPO / "docs" / "architecture.md")


def _pointers() -> list[tuple[str, Path, str]]:
    """(where, page, anchor) for every ``docs/<page>.md#<anchor>`` in the sources and every relative link in
    the Markdown pages."""
    found = []
    for root in ("HER2Radiomics", "Testing", "benchmarks", "scripts"):
        for f in (REPO / root).rglob("*.py"):
            for page, anchor in re.findall(r"\bdocs/([\w/.-]+?\.md)(?:#([\w-]+))?", f.read_text(encoding="utf-8")):
                found.append((str(f.relative_to(REPO)), REPO / "docs" / page, anchor))
    for md in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        for page, anchor in re.findall(r"\]\(([\w/.-]+?\.md)(?:#([\w-]+))?\)", md.read_text(encoding="utf-8")):
            found.append((str(md.relative_to(REPO)), (md.parent / page).resolve(), anchor))
    return found


def test_doc_pointers_lead_to_a_page_and_heading():
    broken = []
    for where, page, anchor in _pointers():
        if not page.is_file():
            broken.append(f"{where}: {page} does not exist")
        elif anchor and anchor not in heading_anchors(page):
            broken.append(f"{where}: {page.name} has no heading #{anchor}")
    assert not broken, "\n".join(broken)
