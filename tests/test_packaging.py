"""What the built package declares: one license everywhere, type markers, optional extras.

Read from the files maturin packs (pyproject.toml, native/Cargo.toml, the package
directories), so no wheel is built here (that compiles the Rust core).
"""

from __future__ import annotations

import tomllib

from tests.test_cli_runner import ROOT

PACKAGES = ("streams", "agents", "models", "connectors")


def _toml(path: str) -> dict:
    with open(ROOT / path, "rb") as f:
        return tomllib.load(f)


def test_one_license_in_pyproject_cargo_and_a_license_file() -> None:
    """Fails on the previous code: pyproject said Apache-2.0, Cargo.toml MIT, no LICENSE."""
    python = _toml("pyproject.toml")["project"]["license"]["text"]
    rust = _toml("native/Cargo.toml")["package"]["license"]
    assert python == rust == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_every_package_is_marked_typed() -> None:
    """PEP 561: type checkers use the packages' annotations (ringcrypto has its .pyi).
    Fails on the previous code."""
    missing = [p for p in PACKAGES if not (ROOT / p / "py.typed").is_file()]
    assert not missing, missing
    assert set(_toml("pyproject.toml")["tool"]["maturin"]["python-packages"]) == set(PACKAGES)
    assert (ROOT / "ringcrypto.pyi").is_file()


def test_demo_only_libraries_are_in_the_demo_extra() -> None:
    """The worker, sink and CLI never draw: matplotlib (and numpy, its dependency) only in
    the extra `make demo` installs."""
    project = _toml("pyproject.toml")["project"]
    base = " ".join(project["dependencies"])
    assert "matplotlib" not in base and "numpy" not in base
    assert any(d.startswith("matplotlib") for d in project["optional-dependencies"]["demo"])
    assert ".[test,demo]" in (ROOT / "Makefile").read_text()
