"""The README's demo command does its job: every agency's traffic in, one family's unified
timelines out, the alerts' recipients really told, and Ctrl-C stops everything it started."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient

from backbone.settings import REPO_ROOT

HOOKS = "http://127.0.0.1:8089/hooks"  # deploy/notifications/routing.yaml


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


def received(alerts: str, rule: str) -> set[tuple[str, str, str, str]]:
    """Under one alert: each recipient's channel, address, status and what arrived (its first
    two words: severity and rule)."""
    start = re.search(rf"^  {rule} ", alerts, re.MULTILINE)
    assert start is not None, f"no {rule} alert"
    # The alert's line and its person's, then one line per recipient.
    lines = alerts[start.start() :].splitlines()[2:]
    found = set()
    for line in itertools.takewhile(lambda line: line.startswith("     "), lines):
        channel, recipient, status, *headline = line.split()
        found.add((channel, recipient, status, " ".join(headline[:2])))
    return found


def summaries(section: str) -> list[str]:
    return re.findall(r"(?:Social care|Health|Jobcentre|Housing): [a-z]+(?: [a-z]+)*", section)


def test_the_demo_joins_up_all_four_agencies_and_stops_cleanly_on_ctrl_c(
    kafka: str, postgres: str
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BACKBONE_KAFKA_BOOTSTRAP": kafka},
    )
    try:
        out = read_until(demo, "Press Ctrl-C to stop everything", timeout_s=240)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
    finally:
        demo.kill()

    assert "same delivery again (retry)" in out and "-> 400" in out and "-> 401" in out
    assert out.count("-> AA") == 4 and "-> AE (MSH:" in out
    daniel = out[out.index("Daniel (case person") : out.index("Grace (case person")]
    grace = out[out.index("Grace (case person") : out.index("Alerts (GET /alerts)")]
    alerts = out[out.index("Alerts (GET /alerts)") : out.index("A coordinator token")]
    # Daniel's attendance has no national identifier: linked by name, birth date, postcode.
    assert summaries(daniel) == [
        "Social care: referral received",
        "Social care: case opened",
        "Health: attendance",
        "Social care: safeguarding concern",
    ]
    # Each side of the family reads the relationship as it stands to them.
    assert "household: parent" in daniel and "household: child" in grace
    # One person across four agencies, linked by the keyed national identifier.
    seen = summaries(grace)
    assert seen[:3] + seen[5:6] + seen[8:] == [
        "Social care: assessment completed",
        "Health: attendance",
        "Health: admission",
        "Health: discharge",
        "Jobcentre: jobseeker registered",
        "Jobcentre: claim applied",
        "Jobcentre: claim awarded",
        "Jobcentre: sanction imposed",
    ]
    # Pairs from one night's export have the same event time: either order is right.
    assert sorted(seen[3:5]) == ["Housing: notice served", "Housing: tenancy started"]
    assert sorted(seen[6:8]) == [
        "Housing: arrears threshold crossed",
        "Housing: eviction warrant issued",
    ]
    raised = sorted(re.findall(r"^  (R\d) (urgent|high|warning)", alerts, re.MULTILINE))
    assert raised == [("R1", "high"), ("R2", "urgent"), ("R6", "urgent")]
    # Every recipient the sample routing names for the alerts' teams received its notification
    # at the demo's mail server or webhook receiver, and the API says it was sent.
    told = {rule: received(alerts, rule) for rule, _severity in raised}
    assert told == {
        "R1": {
            ("webhook", f"{HOOKS}/hospital-discharge", "sent", "[high] R1"),
            ("email", "discharge-team@hospital.example.org", "sent", "[high] R1"),
            ("email", "housing-options@council.example.org", "sent", "[high] R1"),
        },
        "R2": {
            ("webhook", f"{HOOKS}/social-care", "sent", "[urgent] R2"),
            ("webhook", f"{HOOKS}/housing", "sent", "[urgent] R2"),
            ("email", "housing-officers@council.example.org", "sent", "[urgent] R2"),
        },
        "R6": {
            ("email", "safeguarding-lead@council.example.org", "sent", "[urgent] R6"),
            ("webhook", f"{HOOKS}/hospital-safeguarding", "sent", "[urgent] R6"),
            ("email", "safeguarding@hospital.example.org", "sent", "[urgent] R6"),
        },
    }
    dead_letters = out[out.index("Dead letters") : out.index("Unified timelines")]
    for connector in ("social-care-webhook", "hl7-mllp", "jobcentre-cdc", "housing-csv"):
        assert connector in dead_letters
    assert "Worker metrics    http://127.0.0.1:6066/metrics" in out
    # Everything it started has stopped: nothing answers on its ports any more.
    for port in (6066, 8081, 2575, 9101, 9102, 9103, 9104, 8025, 8089):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    # Nor does its run keep topics on the broker (each run has its own prefix).
    run = re.search(r"Process logs +\.backbone/(demo-\d+)/", out)
    assert run is not None
    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics
    assert [name for name in topics if name.startswith(run.group(1))] == []
