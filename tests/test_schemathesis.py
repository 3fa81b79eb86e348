"""Schemathesis runs every check against a real manager (uvicorn, real Redis, SQLite).

Bounded: ``JOBBERS_SCHEMATHESIS_EXAMPLES`` examples per operation (default 50, about a minute on
2 cores) with a fixed seed, so a run is repeatable; set ``JOBBERS_SCHEMATHESIS_SEED`` to explore
elsewhere. Deliberate deviations from what the checks assume are listed, with the reason, in
``tests/schemathesis.toml``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import E2E

HERE = Path(__file__).resolve().parent
EXAMPLES = os.environ.get("JOBBERS_SCHEMATHESIS_EXAMPLES", "50")
SEED = os.environ.get("JOBBERS_SCHEMATHESIS_SEED", "20261202")


@pytest.mark.timeout(900)  # ~50 operations x 50 examples: minutes on a loaded 2-core machine
def test_schemathesis_finds_nothing_with_every_check(e2e: E2E) -> None:
    manager = e2e.platform.manager(LOG_LEVEL="WARNING")
    st = Path(sys.executable).parent / "st"

    result = subprocess.run(
        [str(st), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{manager.url}/openapi.json",
         "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "2", "--no-color",
         "--request-timeout", "30"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip

    log = e2e.platform.log_of(manager.proc)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout[-5_000:]
    assert not re.search(r"\b0 passed", result.stdout), result.stdout[-5_000:]
    assert "Traceback" not in log and "unhandled error" not in log, log[-5_000:]
