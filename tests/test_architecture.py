"""ARCHITECTURE.md names every module of the package, so the map stays true."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_is_on_the_map():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    package = ROOT / "impactmodel"
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(package)
        named = path.name in text or f"`{path.stem}`" in text
        if not named:
            missing.append(str(relative))
    assert not missing, f"modules missing from ARCHITECTURE.md: {missing}"
