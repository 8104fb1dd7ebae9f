"""Check hwnas's import layering: upward imports and import cycles.

Walks src/hwnas/**/*.py with ``ast`` (nothing is imported or executed), resolves every import of
an hwnas module, absolute or relative, at module level or inside a function (imports under
``if TYPE_CHECKING:`` are skipped, they never run), and gives each module a layer from LAYERS
below. An import is *upward* when the importer's layer is lower than the imported module's.
Cycles are the strongly connected components (Tarjan) of the module graph: once over all edges,
once over module-level edges only.

    python scripts/layers.py                       # report; exit status 0
    python scripts/layers.py --check 18 4          # exit 1 if more than 18 module-level or
                                                   # 4 in-function up-imports, or any cycle
    python scripts/layers.py --root /tmp/old       # check another checkout

Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# The layer table. Higher number = higher layer; a module may import its own layer or lower ones.
# Entries are tried in order and the first match wins. A pattern matches the module of that name
# and everything below it ("hwnas.space" matches hwnas.space, hwnas.space.chain, ...), except a
# pattern ending in ".__init__", which matches only that package itself ("hwnas.__init__" is the
# root module hwnas, not its submodules). Modules that match nothing are reported and left out of
# the up-import count (they still take part in cycle detection).
# ---------------------------------------------------------------------------------------------
LAYERS: list[tuple[str, int]] = [
    ("hwnas.cli", 6),  # face: the command line
    ("hwnas.api", 6),  # face: the Python API (run_search: the loop, then the report)
    ("hwnas.report", 5),
    ("hwnas.__init__", 6),  # the root package: public API facade, may import anything
    ("hwnas.experiment", 4),  # the loop
    ("hwnas.strategy", 3),
    ("hwnas.estimate", 3),
    ("hwnas.pruning", 3),
    ("hwnas.oneshot", 3),
    ("hwnas.quant", 3),
    ("hwnas.hardware", 2),
    ("hwnas.space", 1),
    ("hwnas.data", 1),
    ("hwnas.core", 0),
    ("hwnas.progress", 0),
]

PACKAGE = "hwnas"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "in-function" if self.in_function else "module-level"
        return f"{self.importer} -> {self.imported} (line {self.line}, {where})"


def layer_of(module: str) -> int | None:
    for pattern, layer in LAYERS:
        if pattern.endswith(".__init__"):
            if module == pattern[: -len(".__init__")]:
                return layer
        elif module == pattern or module.startswith(pattern + "."):
            return layer
    return None


def find_modules(src: Path) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is_package) for every .py file under src/PACKAGE."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def is_ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


class Resolver:
    def __init__(self, modules: dict[str, tuple[Path, bool]]) -> None:
        self.modules = modules
        self.unresolved: list[str] = []

    def existing(self, name: str, where: str) -> str | None:
        """`name` if it is a module file or package here; else None, with a warning."""
        if name in self.modules:
            return name
        self.unresolved.append(f"{where}: no module {name} under src/; import ignored")
        return None

    def targets(self, module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
        """The hwnas modules one import statement in `module` loads."""
        where = f"{module} line {node.lineno}"
        found: list[str] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_ours(alias.name):
                    target = self.existing(alias.name, where)
                    if target:
                        found.append(target)
            return found
        if node.level:
            is_package = self.modules[module][1]
            parts = module.split(".") if is_package else module.split(".")[:-1]
            if node.level > 1:
                parts = parts[: -(node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        if not is_ours(base):
            return found
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and sub in self.modules:
                found.append(sub)
            else:
                target = self.existing(base, where)
                if target:
                    found.append(target)
        return list(dict.fromkeys(found))


def collect_imports(module: str, path: Path, resolver: Resolver) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in resolver.targets(module, node):
                if target != module:
                    found.append(Import(module, target, node.lineno, in_function))
            return
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for stmt in node.orelse:  # the else branch does run
                visit_one(stmt, in_function)
            return
        function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        visit(node, in_function or function)

    visit(tree, False)
    return list(dict.fromkeys(found))


def is_upward(imp: Import, modules: dict[str, tuple[Path, bool]]) -> bool:
    if modules[imp.importer][1] and imp.imported.startswith(imp.importer + "."):
        return False  # a package's __init__ importing its own submodules
    low, high = layer_of(imp.importer), layer_of(imp.imported)
    return low is not None and high is not None and low < high


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; only components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """A shortest cycle through the first member, staying inside the component."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return members  # not reached for a real component


def report_cycles(title: str, graph: dict[str, set[str]], imports: list[Import]) -> int:
    components = strongly_connected(graph)
    print(f"\n{title}: {len(components)}")
    lines = {(imp.importer, imp.imported): imp for imp in reversed(imports)}
    for number, members in enumerate(components, 1):
        cycle = shortest_cycle(graph, members)
        print(f"  cycle {number} ({len(members)} modules): {' -> '.join(cycle)}")
        for a, b in zip(cycle[:-1], cycle[1:], strict=True):
            print(f"      {lines[(a, b)]}")
        if len(members) > len(cycle) - 1:
            print(f"      component: {', '.join(members)}")
    return len(components)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root holding src/hwnas (default: the repo this script lives in)",
    )
    parser.add_argument(
        "--check",
        nargs=2,
        type=int,
        metavar=("MAX_MODULE_LEVEL", "MAX_IN_FUNCTION"),
        help="exit 1 if the up-imports exceed these counts or any cycle exists",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="list each module's layer")
    args = parser.parse_args(argv)

    src = args.root / "src"
    if not (src / PACKAGE).is_dir():
        parser.error(f"no {PACKAGE} package under {src}")
    modules = find_modules(src)
    resolver = Resolver(modules)
    imports = [
        imp for m, (path, _) in modules.items() for imp in collect_imports(m, path, resolver)
    ]

    unassigned = [m for m in modules if layer_of(m) is None]
    if args.verbose:
        print("layers:")
        for m in modules:
            print(f"  {layer_of(m)!s:>4}  {m}")
    for m in unassigned:
        print(f"warning: {m} matches no entry in LAYERS; its imports are not checked")
    for note in resolver.unresolved:
        print(f"warning: {note}")

    up = [imp for imp in imports if is_upward(imp, modules)]
    up_module = [imp for imp in up if not imp.in_function]
    up_function = [imp for imp in up if imp.in_function]
    for title, group in (("module-level", up_module), ("in-function", up_function)):
        print(f"\nupward imports, {title}: {len(group)}")
        for imp in group:
            print(f"  {imp}  [{layer_of(imp.importer)} -> {layer_of(imp.imported)}]")

    every: dict[str, set[str]] = {m: set() for m in modules}
    top: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        every[imp.importer].add(imp.imported)
        if not imp.in_function:
            top[imp.importer].add(imp.imported)
    cycles = report_cycles("cycles, all imports", every, imports)
    top_imports = [imp for imp in imports if not imp.in_function]
    top_cycles = report_cycles("cycles, module-level imports only", top, top_imports)

    print(
        f"\nup-imports: module-level {len(up_module)}, in-function {len(up_function)}; "
        f"cycles: {cycles} (module-level only: {top_cycles})"
    )
    if args.check is None:
        return 0
    max_module, max_function = args.check
    failed = len(up_module) > max_module or len(up_function) > max_function or cycles > 0
    print("check: FAILED" if failed else "check: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
