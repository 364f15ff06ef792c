"""The README's demo command does its job: sample traffic in, timelines out, Ctrl-C stops it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

from backbone.settings import REPO_ROOT


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"demo never printed {marker!r}:\n{''.join(seen)[-3000:]}")


def test_the_demo_prints_timelines_and_stops_cleanly_on_ctrl_c(kafka: str) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "backbone", "demo"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BACKBONE_KAFKA_BOOTSTRAP": kafka},
    )
    try:
        out = read_until(demo, "Press Ctrl-C to stop everything", timeout_s=180)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
    finally:
        demo.kill()

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
    # Everything it started has stopped: nothing answers on its ports any more.
    for port in (6066, 8081, 9101):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
