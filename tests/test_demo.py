"""The README's demo command does its job: sample traffic in, timelines out."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from backbone.settings import REPO_ROOT


def test_the_demo_prints_timelines_from_sample_traffic(kafka: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backbone", "demo", "--exit"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "BACKBONE_KAFKA_BOOTSTRAP": kafka},
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same delivery again (retry)                          -> 202" in out
    assert "-> 400" in out and "-> 401" in out
    daniel = out[out.index("Daniel (case person") : out.index("Grace (case person")]
    assert re.findall(r"Social care: [a-z]+(?: [a-z]+)*", daniel) == [
        "Social care: referral received",
        "Social care: case opened",
        "Social care: safeguarding concern",
    ]
    assert "household: parent" in daniel
    assert "Worker metrics    http://127.0.0.1:6066/metrics" in out
