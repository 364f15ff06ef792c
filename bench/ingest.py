"""Ingest: the connectors' own benchmarks, each in its own process, through the real broker.

`benchmarks/social_care_webhook.py` (aiohttp load generator, 202 after the Kafka ack) and
`benchmarks/hl7_mllp.py` (hospital simulator over MLLP, AA after the Kafka ack) each start
their connector against the broker under a fresh topic prefix, drive it from the script's
process and write their figures as JSON, which is read back here.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404 # every call is a fixed command, checked under B603
import sys
import tempfile
from pathlib import Path
from typing import Any

from backbone.errors import TransientError
from backbone.settings import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
SCRIPTS = {"webhook": "social_care_webhook.py", "mllp": "hl7_mllp.py"}


def run_ingest(bootstrap: str, records: int) -> dict[str, Any]:
    """Both connectors' figures for `records` inputs each."""
    return {name: _run(script, bootstrap, records) for name, script in SCRIPTS.items()}


def _run(script: str, bootstrap: str, records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        result_file = Path(folder) / "result.json"
        command = [
            sys.executable,
            str(BENCHMARKS / script),
            "--records",
            str(records),
            "--bootstrap",
            bootstrap,
            "--json",
            str(result_file),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)  # nosec B603 # this interpreter running a script of benchmarks/, no shell
        if not result_file.exists():
            raise TransientError(f"{script} wrote no figures: {done.stderr[-1500:]}")
        figures: dict[str, Any] = json.loads(result_file.read_text())
        return figures
