"""Guard against a catastrophic parse-cost regression (figures: benchmarks/parse_dags.py)."""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CATASTROPHIC_S = 5.0  # ten times the 0.5 s goal: only a heavy import at top level gets here


def test_dags_folder_parses_far_below_catastrophic():
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "parse_dags.py"), "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["files"], "no DAG file was parsed"
    assert figures["total_s"] < CATASTROPHIC_S, figures
