"""The packages' structure, read from their source with :mod:`ast` (nothing is imported).

It holds what docs/architecture.md promises (issue 33): ``cube`` is stacked in subpackages that depend one way
(the data set's facts, the store, the cloud pass, ingest, the read-only analyses, the synthetic set on top); no
module imports another's private names (nor does a test or a benchmark); no import cycles; ``cube`` never reaches
torch or ``crts``. Imports inside functions count like the others: a lazy import is still a dependency. There are
no exceptions.

Tests mirror the packages: every module has its test module at the mirrored path (``cube/store/outputs.py`` ->
``tests/cube/store/test_outputs.py``) and every test module there mirrors a module, but for the few listed with a
reason in :data:`TESTED_IN` and :data:`CROSS_MODULE`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cube", "crts")
"""The packages whose modules form the import graph."""

LAYERS = {
    "cube": 0,
    "cube.dataset": 1,
    "cube.store": 2,
    "cube.parallel": 3,
    "cube.clouds": 4,
    "cube.ingest": 5,
    "cube.analysis": 6,
    "cube.synth": 7,
    "cube.explore": 8,
}
"""Each part of ``cube`` and its floor: a module may import from its own floor and below, never above. ``cube``
itself (its ``__init__``: the version, and public names looked up on first use) is the ground floor."""


@dataclass(frozen=True)
class Import:
    """One imported module or name, as a module's source says it."""

    importer: str
    target: str
    name: str | None
    line: int


def modules(*folders: str, root: Path = ROOT) -> dict[str, Path]:
    """Every module of the given top-level folders of ``root``, by dotted name (a package by its own name)."""
    found = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """Every import statement of a module, anywhere in it, resolved to absolute names.

    ``from package import x`` yields the submodule ``package.x`` where there is one, else ``package`` and the
    name ``x``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (Import(name, alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:
                    yield Import(name, submodule, None, node.lineno)
                else:
                    yield Import(name, target, alias.name, node.lineno)


def all_imports(*folders: str) -> list[Import]:
    """The imports of every module of the folders (resolved against the modules of PACKAGES and the folders)."""
    known = modules(*PACKAGES, *folders)
    return [found for name, path in modules(*folders).items() for found in imports_of(name, path, known)]


def graph() -> dict[str, set[str]]:
    """The import graph between the modules of PACKAGES, plus each external top-level package they import."""
    known = modules(*PACKAGES)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for found in all_imports(*PACKAGES):
        edges[found.importer].add(found.target if found.target in known else found.target.split(".")[0])
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> int:
    """The floor (:data:`LAYERS`) of a module of ``cube``: its longest listed prefix."""
    parts = module.split(".")
    return next(LAYERS[".".join(parts[:n])] for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in LAYERS)


def test_every_import_of_the_packages_names_a_module_of_this_tree() -> None:
    # An editable install of another checkout would otherwise answer an old path silently.
    known = modules(*PACKAGES)
    stale = [
        f"{found.importer}:{found.line} imports {found.target}"
        for found in all_imports(*PACKAGES, "tests", "benchmarks")
        if found.target.split(".")[0] in PACKAGES and found.target not in known
    ]
    assert not stale, stale


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, found


def test_no_private_name_is_imported_across_modules() -> None:
    known = modules(*PACKAGES, "benchmarks", "tests")
    private = {
        (found.importer, found.target, found.name)
        for found in all_imports(*PACKAGES, "benchmarks", "tests")
        if found.name
        and found.name.startswith("_")
        and not found.name.startswith("__")
        and found.target in known
        and found.target != found.importer
    }
    assert not private, sorted(private)


def test_cube_never_reaches_torch_or_crts() -> None:
    edges = graph()
    for start in (name for name in edges if name.split(".")[0] == "cube"):
        seen, todo = {start}, [start]
        while todo:
            for succ in edges.get(todo.pop(), ()):
                assert succ.split(".")[0] not in ("torch", "crts"), f"{start} reaches {succ}"
                if succ not in seen:
                    seen.add(succ)
                    todo.append(succ)


def test_cube_s_subpackages_depend_one_way() -> None:
    edges = graph()
    back = [
        f"{importer} (floor {layer(importer)}) imports {target} (floor {layer(target)})"
        for importer, targets in edges.items()
        if importer.split(".")[0] == "cube"
        for target in targets
        if target.split(".")[0] == "cube" and layer(target) > layer(importer)
    ]
    assert not back, back
    assert {name.split(".")[1] for name in edges if name.count(".") >= 1 and name.startswith("cube.")} <= {
        part.split(".")[1] for part in LAYERS if "." in part
    }, "a new part of cube needs its floor in LAYERS"


def test_the_graph_sees_the_lazy_imports() -> None:
    # compute imports the forest inside a function; the test must count it.
    assert "cube.clouds.forest" in graph()["cube.clouds.compute"]


def test_no_test_module_imports_from_another() -> None:
    # Shared helpers live in helper modules (tests/helpers.py, servers.py, figures.py, crts/models/base.py).
    reaching = [
        f"{found.importer}:{found.line} imports {found.target}"
        for found in all_imports("tests")
        if found.target.startswith("tests.") and found.target.rpartition(".")[2].startswith("test_")
    ]
    assert not reaching, reaching


TESTED_IN: dict[str, str] = {}
"""Package modules whose tests live in a test module of another name, each with its reason. None today."""

CROSS_MODULE = {
    "tests/cube/synth/test_realism.py": "the synthetic set as a whole (scenes, sky, dataset, detectors) against "
    "what Sentinel data shows",
}
"""Test modules under tests/cube and tests/crts that test several modules together, each with its reason."""


def mirrored(module: str) -> str:
    """The test module of a package module: ``cube.store.outputs`` -> ``tests/cube/store/test_outputs.py``."""
    *package, name = module.split(".")
    return "/".join(["tests", *package, f"test_{name}.py"])


def missing_test_modules(root: Path = ROOT) -> list[str]:
    """The modules of PACKAGES under ``root`` (but ``__init__`` and ``__main__``) without their test module."""
    return [
        f"{name}: no {mirrored(name)}"
        for name, path in modules(*PACKAGES, root=root).items()
        if path.stem not in ("__init__", "__main__") and not (root / TESTED_IN.get(name, mirrored(name))).is_file()
    ]


def stale_test_modules(root: Path = ROOT) -> list[str]:
    """The test modules under ``root``'s tests/cube and tests/crts that mirror no module (nor are listed)."""
    known = set(modules(*PACKAGES, root=root)) | set(TESTED_IN)
    tests = root / "tests"
    return [
        path.relative_to(root).as_posix()
        for folder in PACKAGES
        for path in sorted((tests / folder).rglob("test_*.py"))
        if path.relative_to(root).as_posix() not in CROSS_MODULE
        and ".".join([*path.relative_to(tests).parent.parts, path.stem[len("test_") :]]) not in known
    ]


def test_every_module_has_its_test_module_at_the_mirrored_path() -> None:
    missing = missing_test_modules()
    assert not missing, missing


def test_every_test_module_mirrors_a_module() -> None:
    stale = stale_test_modules()
    assert not stale, f"test modules that mirror no module (move them, or list them in CROSS_MODULE): {stale}"


def test_the_exceptions_name_what_exists() -> None:
    assert all((ROOT / f"{name.replace('.', '/')}.py").is_file() for name in TESTED_IN), TESTED_IN
    assert all((ROOT / test).is_file() for test in [*TESTED_IN.values(), *CROSS_MODULE]), CROSS_MODULE


def test_the_mirror_rule_names_a_missing_and_a_stale_test_module(tmp_path: Path) -> None:
    for file in (
        "cube/__init__.py",
        "cube/__main__.py",
        "cube/store/__init__.py",
        "cube/store/kept.py",
        "cube/store/new.py",
        "tests/cube/store/test_kept.py",
        "tests/cube/store/test_gone.py",
    ):
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).touch()
    assert missing_test_modules(tmp_path) == ["cube.store.new: no tests/cube/store/test_new.py"]
    assert stale_test_modules(tmp_path) == ["tests/cube/store/test_gone.py"]
