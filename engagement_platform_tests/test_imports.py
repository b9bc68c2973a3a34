"""The package's import rules, read from the source: Dagster code stays behind ``defs/``, and
the subpackages form no cycle (each can be read, tested and moved without its dependents)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import engagement_platform

PACKAGE = Path(engagement_platform.__file__).parent
# the Dagster code location: the one module outside defs/ that assembles defs/
ENTRY_POINTS = {"engagement_platform.definitions"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def _imports(path: Path) -> Iterator[str]:
    """Every engagement_platform module ``path`` imports, at any depth of the file (absolute
    names; relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # a name that is a module is imported as that module
                name = f"{base}.{alias.name}"
                yield name if _is_module(name) else base


def _graph() -> dict[str, set[str]]:
    """Module -> the engagement_platform modules it imports."""
    return {
        _module_name(path): {name for name in _imports(path) if name.startswith("engagement_platform.")}
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or not (PACKAGE / parts[1]).is_dir():
        return None
    return parts[1]


def test_nothing_outside_defs_imports_defs() -> None:
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in _graph().items()
        if _subpackage(module) != "defs" and module not in ENTRY_POINTS
        for name in names
        if _subpackage(name) == "defs"
    )
    assert not offenders, "\n".join(offenders)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_among_the_subpackages() -> None:
    edges: dict[str, set[str]] = {}
    why: dict[tuple[str, str], set[str]] = {}
    for module, names in _graph().items():
        source = _subpackage(module)
        for name in names:
            target = _subpackage(name)
            if source and target and source != target:
                edges.setdefault(source, set()).add(target)
                why.setdefault((source, target), set()).add(f"{module} imports {name}")
    cycles = _cycles(edges)
    detail = [
        f"{' <-> '.join(c)}: " + "; ".join(w for a in c for b in c for w in sorted(why.get((a, b), ())))
        for c in cycles
    ]
    assert not cycles, "\n".join(detail)
