"""The house's rules, read from the source (docs/DESIGN.md, "Layout and dependencies").

Imports count wherever they stand, at module level or inside a function: a function-level
import still makes one module depend on another, and a cycle through it is still a cycle.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("triage", "reviews")
MAX_LINES = 400
# What may stand at triage/'s top level besides packages.
TOP_LEVEL_FILES = {
    "__init__.py",
    "access.py",
    "stats.py",
    "filelock.py",
    "conf.py",
    "settings.py",
    "urls.py",
    "wsgi.py",
    "celery.py",
    "apps.py",
}
# Only these packages may import the heavy ML libraries.
ML_LIBRARIES = {"torch", "transformers", "onnxruntime", "onnx", "safetensors"}


def source_files() -> Iterator[Path]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in the file names, resolved to absolute."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            # `from triage.classify import service` imports the module triage.classify.service.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in source_files()}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for name in imported_names(path):
            # The longest project module the name falls in: a class import counts as its module.
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def package_of(module: str) -> str:
    """The unit of the dependency rules: reviews, or triage's second-level package or module."""
    parts = module.split(".")
    return "reviews" if parts[0] == "reviews" else ".".join(parts[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_even_through_function_level_imports():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_packages_depend_on_each_other():
    edges: dict[tuple[str, str], str] = {}
    for module, targets in import_graph().items():
        for target in targets:
            pair = (package_of(module), package_of(target))
            if pair[0] != pair[1]:
                edges.setdefault(pair, f"{module} -> {target}")
    both_ways = sorted(
        f"{a} <-> {b}: {edges[(a, b)]}; {edges[(b, a)]}"
        for a, b in edges
        if (b, a) in edges and a < b
    )
    assert both_ways == []


def test_the_core_never_imports_the_analysts_app():
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if module.startswith("triage") and target.startswith("reviews")
    )
    assert offending == []


def test_only_triage_ml_imports_the_ml_libraries():
    offending = sorted(
        f"{module_name(path)} imports {name}"
        for path in source_files()
        if not module_name(path).startswith("triage.ml")
        for name in imported_names(path)
        if name.split(".")[0] in ML_LIBRARIES
    )
    assert offending == []


def test_the_top_level_of_triage_holds_packages_and_the_named_modules():
    loose = sorted(
        p.name
        for p in (ROOT / "triage").iterdir()
        if p.is_file() and p.suffix == ".py" and p.name not in TOP_LEVEL_FILES
    )
    assert loose == []


@pytest.mark.parametrize("folder", ["triage", "reviews", "benchmarks"])
def test_no_source_file_is_over_400_lines(folder):
    long = sorted(
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    )
    assert long == []
