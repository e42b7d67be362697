"""The architectural boundaries of DESIGN.md hold: import-linter's contracts (pyproject.toml)
pass, and importing ``studio.core`` really loads no Qt, torch, onnxruntime or media library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

HEAVY_MODULES_CORE_MUST_NOT_LOAD = ("torch", "onnxruntime", "PySide6", "pyqtgraph", "vispy", "cv2", "av")


def test_import_linter_contracts_hold():
    lint_imports = VENV_BIN / "lint-imports"
    assert lint_imports.is_file(), f"{lint_imports} is missing: run `make setup`"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"


def test_importing_core_and_all_its_modules_loads_no_heavy_modules():
    probe = (
        "import importlib, json, pkgutil, sys\n"
        "import studio.core\n"
        "for module in pkgutil.walk_packages(studio.core.__path__, 'studio.core.'):\n"
        "    importlib.import_module(module.name)\n"
        f"heavy = {HEAVY_MODULES_CORE_MUST_NOT_LOAD!r}\n"
        "print(json.dumps(sorted(name for name in heavy if name in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing studio.core failed:\n{result.stderr}"
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing studio.core loaded {', '.join(loaded)}"
