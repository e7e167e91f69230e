"""The allowed import directions (``.importlinter``) hold: ``lint-imports`` keeps every contract.

The contracts say, among others, that the local control plane never imports the operator and
that its API server, controllers and kubelet never import each other. CONTRIBUTING.md explains
them; a failure here names the offending import chain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    tool = Path(sys.executable).with_name("lint-imports")
    assert tool.exists(), f"{tool} is missing: install the test extra (pip install -e '.[test]')"
    out = subprocess.run([str(tool), "--no-cache", str(ROOT / ".importlinter")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
