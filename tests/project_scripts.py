"""Helpers for the tests of ``project/scripts/``: import a script as a module, or run it."""
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PROJECT = Path(__file__).resolve().parents[1] / "project"


def load_script(name: str) -> ModuleType:
    """Import one of project/scripts/ as a module (the scripts import each other by name)."""
    scripts = str(PROJECT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module(name)


def run_script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from project/; with ``check``, fail with its output's tail if it fails."""
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT)
    assert not check or result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
