"""The package's layers, read from its imports (ast): every bvp import sits at the top of its module and points
down the pipeline (or within its own layer), so there are no import circles and no dodges inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bvp"
LAYERS = (  # bottom first; a module may import its own layer and the layers below
    (
        "bvp",
        "bvp.names",
        "bvp.torchutil",
        "bvp.rules",
        "bvp.io",
        "bvp.identity",
        "bvp.resolvers",
        "bvp.losses",
        "bvp.console",
        "bvp.objectives",
    ),
    ("bvp.data", "bvp.models", "bvp.export", "bvp.evaluation", "bvp.trainer"),
    ("bvp.module", "bvp.pruning"),
    ("bvp.config", "bvp.dashboard"),
    ("bvp.sweep", "bvp.run"),
    ("bvp.bench", "bvp.cost_table", "bvp.study", "bvp.report"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    """The layer of a module: its longest matching prefix in LAYERS ("bvp" itself matches only the package)."""

    def matches(prefix: str) -> bool:
        return name == prefix or (prefix != "bvp" and name.startswith(f"{prefix}."))

    found = [(len(p), i) for i, group in enumerate(LAYERS) for p in group if matches(p)]
    assert found, f"{name} is in no layer: add it to LAYERS"
    return max(found)[1]


def bvp_imports(tree: ast.Module) -> list[tuple[ast.AST, str, bool]]:
    """(node, imported module, at module level) for every import of a bvp module; module level includes the
    top-level ``if``/``try`` blocks (``if TYPE_CHECKING:``)."""
    top = {id(n) for stmt in tree.body for n in (ast.walk(stmt) if isinstance(stmt, (ast.If, ast.Try)) else [stmt])}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        out += [(node, n, id(node) in top) for n in names if n == "bvp" or n.startswith("bvp.")]
    return out


def test_every_bvp_import_is_at_module_level_and_points_down() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for node, target, at_top in bvp_imports(ast.parse(path.read_text())):
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}"
            if not at_top:
                problems.append(f"{where} inside a function")
            elif layer(target) > layer(name):
                problems.append(f"{where}: layer {layer(target)} above its own {layer(name)}")
    assert not problems, "\n".join(problems)


def test_the_check_finds_an_upward_import_and_one_inside_a_function() -> None:
    tree = ast.parse("from bvp.run import train\n\ndef f():\n    from bvp.io import read_json\n")
    found = {(target, at_top) for _, target, at_top in bvp_imports(tree)}
    assert found == {("bvp.run", True), ("bvp.io", False)} and layer("bvp.run") > layer("bvp.data.mnist")
