"""The linters as a test (asyncpg's tests/test__sourcecode.py does the same).

ruff's rules are configured in pyproject.toml; this fails with ruff's own
report when any file breaks them, so style drift shows up in `make test`.
"""

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail(
            "ruff is not installed: it is part of the [test] extra (pip install -e '.[test]')"
        )
    return found


def test_ruff_check_passes():
    result = subprocess.run(
        [_ruff(), "check", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the layout: which package may import which (README's "Layout") ----------------------------

PACKAGES = ("streams", "agents", "models", "connectors")
#: Library packages under connectors/: they import only models/, streams/ and themselves.
LIBRARIES = ("connectors.postgres", "connectors.readmodel", "connectors.sdk", "connectors.stack")
#: Where ``python -m`` may start something: the ringtally command and the demo (make demo).
MAINS = {"connectors/cli/__main__.py", "connectors/demo/__main__.py"}


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the four packages under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` for every import in the file, inside functions too.

    Relative imports are resolved against ``name``.
    """
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, module] if module else base)
            out.append((node.lineno, module, tuple(alias.name for alias in node.names)))
    return out


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _forbidden(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None: it may)."""
    ours = imported.split(".")[0] in PACKAGES
    if importer.startswith("models") and ours and not _within(imported, "models"):
        return "models/ imports nothing of ours"
    if importer.startswith("streams") and (
        _within(imported, "agents") or _within(imported, "connectors")
    ):
        return "streams/ is the ground floor"
    if importer.startswith("agents") and _within(imported, "connectors"):
        return "agents/ import only models/ and streams/"
    if importer.startswith("agents") and _within(imported, "faust"):
        if importer != "agents.pipeline":
            return "only agents/pipeline.py touches Faust; the decision modules are pure"
    for library in LIBRARIES:
        if _within(importer, library) and _within(imported, "connectors"):
            if not _within(imported, library):
                return f"{library} imports only models/, streams/ and itself"
    if _within(importer, "connectors.sdk") and imported.split(".")[0] in ("faust", "mode"):
        return "the SDK does not need Faust"
    if _within(importer, "connectors.replay") and (
        _within(imported, "connectors.demo") or _within(imported, "connectors.cli")
    ):
        return "replay imports neither the demo nor the CLI"
    if _within(imported, "connectors.cli") and not _within(importer, "connectors.cli"):
        return "connectors/cli/ is the top: nothing imports it"
    if imported.startswith("faust.cli") and importer != "connectors.cli.root":
        return "Faust's CLI is loaded only by connectors/cli/root.py (for worker)"
    return None


def _private(node: ast.AST) -> str | None:
    """``x._name`` (not a dunder, not an enum's ``_value_``) on anything but self/cls."""
    if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
        return None
    if node.attr.endswith("_"):  # __dunder__ and _sunder_
        return None
    base = node.value
    if isinstance(base, ast.Name) and base.id in ("self", "cls", "os", "sys"):
        return None  # our own attributes, and os._exit / sys._getframe (public API)
    return ast.unparse(node)


def layout_violations(root: Path = ROOT) -> list[str]:
    """Every broken layout rule in the tree at ``root``, one line each.

    ``root`` may be another checkout: run on the tree before issue 13's
    reshape, this lists the imports the reshape removed.
    """
    problems = []
    for name, path in _modules(root).items():
        where = path.relative_to(root).as_posix()
        for line, imported, names in _imports(name, path):
            why = _forbidden(name, imported)
            if why:
                problems.append(f"{where}:{line}: imports {imported}: {why}")
            top = imported.split(".")[0]
            if top in ("faust", "aiokafka", "mode") and not name.startswith("streams"):
                hidden = [n for n in names if n.startswith("_")]
                if hidden or any(p.startswith("_") for p in imported.split(".")):
                    problems.append(
                        f"{where}:{line}: from {imported} import {', '.join(names)}: "
                        "only streams/ touches Faust's or aiokafka's private names"
                    )
        if path.name == "__main__.py" and where not in MAINS:
            problems.append(f"{where}: a second __main__; the command is python -m connectors.cli")
        if name.startswith("streams"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            attr = _private(node)
            if attr:
                problems.append(
                    f"{where}:{node.lineno}: {attr}: private attributes of Faust/aiokafka "
                    "objects are streams/'s business"
                )
    return problems


def test_layout_imports_run_one_way_and_only_streams_touches_private_attributes():
    problems = layout_violations()
    assert not problems, "\n".join(problems)


def test_the_ringtally_script_is_the_one_cli_main():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"ringtally": "connectors.cli:main"}
    mains = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")}
    assert {m for m in mains if m.endswith("__main__.py")} == MAINS


def test_the_layout_check_catches_what_it_forbids():
    """The rules, fed the imports the reshape removed (issue 13)."""
    for importer, imported in [
        ("streams.cli", "connectors.stack.cli"),
        ("streams.cli", "agents.pipeline"),
        ("connectors.readmodel.task", "connectors.postgres.backoff"),
        ("connectors.replay.run", "connectors.demo.procs"),
        ("connectors.postgres.cli", "connectors.readmodel.task"),
        ("connectors.sdk.reader", "connectors.cli._common"),
        ("models.votes", "streams.settings"),
        ("agents.records", "faust.streams"),
        ("connectors.demo.run", "connectors.cli.root"),
    ]:
        assert _forbidden(importer, imported), (importer, imported)
    tree = ast.parse("consumer._client.force_metadata_update(); self._x; os._exit(1); m._value_")
    found = [a for n in ast.walk(tree) if (a := _private(n))]
    assert found == ["consumer._client"]
