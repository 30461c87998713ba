"""The layout's rules that import-linter does not state: no import cycle between
any two modules, no import hidden inside a function to dodge one, no module
over 400 lines and no function over 60 (each exception says why, in a comment)."""

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
# Where an import inside a function stays, and why.
ALLOWED_LOCAL_IMPORTS = {
    # Django's convention: system checks register on import, once apps are ready.
    ("connections/apps.py", "checks"),
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Longer than the limit, each for a reason written where it stands (none today).
LONG_FUNCTIONS: set[tuple[str, str]] = set()


def sources() -> list[Path]:
    return [
        path
        for path in sorted((ROOT / "connections").rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("connections")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_import_inside_a_function():
    found = []
    for path in sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = ",".join(alias.name for alias in inner.names)
                    where = (str(path.relative_to(ROOT)), names)
                    if where not in ALLOWED_LOCAL_IMPORTS:
                        found.append(f"{where[0]}:{inner.lineno} imports {names}")
    assert found == []


def test_modules_and_functions_stay_short():
    found = []
    for path in sources():
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if text.count("\n") > MAX_MODULE_LINES:
            found.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and (name, node.name) not in LONG_FUNCTIONS:
                    found.append(f"{name}:{node.lineno} {node.name}() is {length} lines")
    assert found == []
