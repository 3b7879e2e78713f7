"""torch's CPU threads sleep when they wait: every entry point sets ``OMP_WAIT_POLICY`` before torch loads.

Spinning OpenMP threads burned 20 or more core-ms per image of ingestion on a 2-core machine
whose cores the decode threads share (see ``search/__init__.py``). OpenMP reads the variable
once, when torch is loaded, so what is checked is the policy the loaded runtime reports
(``OMP_DISPLAY_ENV``), in a fresh interpreter per entry point.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _runtime_spin_count(code: str, **env: str) -> int:
    """GOMP_SPINCOUNT as GNU OpenMP reports it after ``code`` ran and torch loaded."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    clean.update(env, OMP_DISPLAY_ENV="VERBOSE")
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport torch"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", done.stderr)
    if found is None:
        pytest.skip("torch's OpenMP runtime is not GNU OpenMP (no GOMP_SPINCOUNT to read)")
    return int(found.group(1))


@pytest.mark.parametrize("entry", ["import ingest.pipeline", "import search.embedder", "import mmsearch.cli"])
def test_entry_points_make_waiting_torch_threads_sleep(entry: str) -> None:
    assert _runtime_spin_count(entry) == 0


def test_an_explicit_policy_wins() -> None:
    assert _runtime_spin_count("import ingest.pipeline", OMP_WAIT_POLICY="ACTIVE") > 0
