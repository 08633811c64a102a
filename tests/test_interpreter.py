"""Without a usable TFLite interpreter `spotter listen` says what to install in one line and exits 2: whether the
packages are missing, or tflite-runtime is there but breaks at import (built for numpy 1, under numpy 2 it raises
ImportError, SystemError or AttributeError after numpy prints a warning with a traceback in it). The install
metadata gives 32-bit Pi OS tflite-runtime with numpy 1, and every other machine LiteRT."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .conftest import DEMO_WAV, ROOT

BLOCK_BOTH = "import sys; sys.modules['ai_edge_litert'] = None; sys.modules['tflite_runtime'] = None\n"
"""A None entry in sys.modules makes `import` raise ImportError, as for a package that is not installed."""
BLOCK_LITERT = "import sys; sys.modules['ai_edge_litert'] = None\n"
RUN_LISTEN = "from spotter.cli import main\nsys.exit(main(['listen', '--quiet', '--input', sys.argv[1]]))\n"
NUMPY2_WARNING = (
    "A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.0 as it may crash.\n"
    "Traceback (most recent call last):  File \"<string>\", line 1, in <module>\n"
)
"""What numpy 2 prints on stderr when a module built against numpy 1 is imported, before that import fails."""


def _listen(prelude: str, tmp_path: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_path = f"{pythonpath}:{ROOT}" if pythonpath else str(ROOT)
    return subprocess.run([sys.executable, "-c", prelude + RUN_LISTEN, str(DEMO_WAV)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_path})


def _assert_one_line_saying_what_to_install(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "NumPy" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spotter: no TFLite interpreter could be imported (")
    assert "pip install ai-edge-litert" in lines[0] and "tflite-runtime 'numpy<2'" in lines[0]
    return lines[0]


def test_no_interpreter_installed(tmp_path: Path) -> None:
    line = _assert_one_line_saying_what_to_install(_listen(BLOCK_BOTH, tmp_path))
    assert "ai_edge_litert: " in line and "tflite_runtime: " in line


@pytest.mark.parametrize("error", ["ImportError", "SystemError", "AttributeError"])
def test_tflite_runtime_that_breaks_at_import(error: str, tmp_path: Path) -> None:
    """A stand-in tflite_runtime that behaves as 2.14 does under numpy 2: the warning on stderr, then `error`."""
    package = tmp_path / "site" / "tflite_runtime"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "interpreter.py").write_text(
        f"import sys\nsys.stderr.write({NUMPY2_WARNING!r})\nraise {error}('numpy.core.multiarray failed to import')\n")
    line = _assert_one_line_saying_what_to_install(_listen(BLOCK_LITERT, tmp_path, tmp_path / "site"))
    assert "tflite_runtime: numpy.core.multiarray failed to import" in line


def _requirements(machine: str) -> dict[str, str]:
    """The runtime dependencies pip installs on a machine: name -> specifiers (merged where a name repeats)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = {"platform_machine": machine, "python_version": "3.11", "sys_platform": "linux"}
    chosen: dict[str, list[str]] = {}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            chosen.setdefault(requirement.name, []).append(str(requirement.specifier))
    return {name: ",".join(sorted(specs)) for name, specs in chosen.items()}


@pytest.mark.parametrize("machine", ["armv7l", "armv8l"])
def test_32_bit_pi_os_gets_tflite_runtime_with_numpy_1(machine: str) -> None:
    """armv8l: 32-bit Pi OS on a Pi 4 or 5 boots a 64-bit kernel, which reports aarch64 unless pip runs under
    `linux32` (README: install B), and then armv8l."""
    armv7l = _requirements(machine)
    assert "tflite-runtime" in armv7l and "ai-edge-litert" not in armv7l
    assert "<2" in armv7l["numpy"]
    for machine in ("aarch64", "x86_64"):
        other = _requirements(machine)
        assert "ai-edge-litert" in other and "tflite-runtime" not in other
        assert "<2" not in other["numpy"]
    assert "soxr" in armv7l and "soxr" in _requirements("aarch64")
