"""ruff and mypy --strict stay clean on the package (run as part of the suite)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "jobbers"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "jobbers"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_state_layer_imports_redis() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "jobbers").rglob("*.py")
        if "state" not in path.relative_to(ROOT / "jobbers").parts[:1]
        and any(
            line.startswith(("import redis", "from redis")) for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
