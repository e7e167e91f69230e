"""The repository passes ``ruff check`` with the rules chosen in ``pyproject.toml``.

Run ``ruff check --fix`` to repair most findings; the ignored rules and why are listed beside
``[tool.ruff.lint]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    tool = Path(sys.executable).with_name("ruff")
    assert tool.exists(), f"{tool} is missing: install the test extra (pip install -e '.[test]')"
    out = subprocess.run([str(tool), "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
