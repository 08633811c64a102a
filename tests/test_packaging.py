"""What `pip install .` puts in the wheel: every package of the source tree, so the runtime install a Pi user makes
has the same modules as the editable install the tests run from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from Python 3.11")
def test_every_package_is_in_the_wheel() -> None:
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / Path(*name.split(".")) for name in setuptools["packages"]}
    folders.update({name: ROOT / folder for name, folder in setuptools["package-dir"].items()})
    listed = set(setuptools["packages"])
    for name, folder in list(folders.items()):
        for init in folder.glob("*/__init__.py"):
            child = f"{name}.{init.parent.name}"
            assert child in listed, f"{child} ({init.parent.relative_to(ROOT)}) is missing from pyproject's packages"
    assert {"spotter", "spotter.cli", "spotter.models", "spotter.train"} <= listed
