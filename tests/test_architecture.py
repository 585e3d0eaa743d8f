"""The layers of ARCHITECTURE.md, held by tests: import contracts, module sizes, a thin Ensemble."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import treeprune

PACKAGE = Path(treeprune.__file__).resolve().parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"

#: A module longer than this mixes jobs; split it.
MAX_LINES = 800
#: Modules still over the limit, each with the reason it is allowed for now. Empty is the goal.
OVERSIZED: dict[str, str] = {
    "cli.py": "every command's options and output in one module; split per command group",
}


def test_import_contracts() -> None:
    """import-linter's contracts in pyproject.toml (kernels, passes, io) all hold."""
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    # in a child process: import-linter reconfigures logging (disabling every existing logger)
    root = PACKAGE.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    code = "import sys; from importlinter.cli import lint_imports; " \
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
    out = subprocess.run([sys.executable, "-c", code, str(PYPROJECT)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"an import contract is broken:\n{out.stdout}\n{out.stderr}"
    assert "BROKEN" not in out.stdout and "KEPT" in out.stdout


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_modules_are_short() -> None:
    too_long = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in OVERSIZED:
            too_long[rel] = n
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job): {too_long}"
    stale = [rel for rel in OVERSIZED
             if not (PACKAGE / rel).is_file()
             or len((PACKAGE / rel).read_text(encoding="utf-8").splitlines()) <= MAX_LINES]
    assert not stale, f"no longer oversized, drop from OVERSIZED: {stale}"


def _module_imports(tree: ast.Module) -> set[str]:
    """Modules imported at module level (relative imports resolved against ``treeprune``)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("treeprune." if node.level else "") + (node.module or "")
            out.add(base.rstrip("."))
    return out


def test_ensemble_module_imports_stay_minimal() -> None:
    """The Ensemble value depends on numpy and the bottom modules only; io is reached lazily."""
    tree = ast.parse((PACKAGE / "ensemble.py").read_text(encoding="utf-8"))
    allowed = {"__future__", "collections", "dataclasses", "typing", "numpy",
               "treeprune._rules", "treeprune.objectives", "treeprune.errors"}
    extra = _module_imports(tree) - allowed
    assert not extra, f"ensemble.py imports {sorted(extra)} at module level; import them lazily"


def test_ensemble_output_methods_are_thin_hand_offs() -> None:
    """save/to_xgboost/to_lightgbm import their writer when called and only delegate to it."""
    tree = ast.parse((PACKAGE / "ensemble.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Ensemble")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    for name, target in (("save", "treeprune.io"), ("to_xgboost", "treeprune.io.xgboost"),
                         ("to_lightgbm", "treeprune.io.lightgbm")):
        body = [s for s in methods[name].body
                if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert len(body) == 2, f"Ensemble.{name} should be an import and one call"
        imp, call = body
        assert isinstance(imp, ast.ImportFrom) and imp.level == 1
        assert "treeprune." + imp.module == target
        value = call.value if isinstance(call, (ast.Return, ast.Expr)) else None
        assert isinstance(value, ast.Call)


def test_public_modules_declare_all() -> None:
    """Every module not marked private (no leading underscore) says what it exports."""
    missing = []
    for path in _modules():
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts) or parts[-1] == "__main__":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                 for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                 if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(path.relative_to(PACKAGE).as_posix())
    assert not missing, f"public modules without __all__: {missing}"
