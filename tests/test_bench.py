"""`backbone bench --quick` runs end to end against the real broker and reports every figure.

Only that the benchmark works: every section is there with positive figures and the plot is
written. Never whether a target was met (the machine is shared; figures are noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The report, the plot's path and what the command printed.
Figures = tuple[dict[str, Any], Path, str]
SECTIONS = (
    "machine",
    "mix",
    "pipeline",
    "latency",
    "backfill",
    "ceiling",
    "logic",
    "soak",
    "memory",
    "messages_per_event",
)


@pytest.fixture(scope="module")
def figures(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Figures:
    folder = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "bench",
            "--quick",
            "--bootstrap",
            kafka,
            "--json",
            str(folder / "bench.json"),
            "--plot",
            str(folder / "bench.png"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((folder / "bench.json").read_text()), folder / "bench.png", result.stdout


def test_every_section_is_reported(figures: Figures) -> None:
    report = figures[0]
    for section in (*SECTIONS, "ingest", "progress"):
        assert report.get(section), f"{section} missing from the report"
    assert report["machine"]["cpus"] >= 1
    assert report["machine"]["kafka"] != "unknown"


def test_throughputs_are_positive(figures: Figures) -> None:
    report = figures[0]
    assert report["pipeline"]["events"] == 300
    assert report["pipeline"]["events_per_s"] > 0
    assert report["pipeline"]["events_per_s_per_worker"] > 0
    assert report["pipeline"]["ratio_to_ceiling"] > 0
    assert report["ceiling"]["events"] >= report["pipeline"]["events"] + 300
    assert report["ceiling"]["events_per_s"] > 0
    assert report["backfill"]["events_per_s"] > 0
    assert report["backfill"]["worker_cpu_ms_per_event"] > 0
    assert report["backfill"]["lag_curve"], "no lag sampled during the backfill"


def test_lag_is_summed_over_the_framer_and_the_workers(figures: Figures) -> None:
    backfill = figures[0]["backfill"]
    groups = set(backfill["max_lag_by_group"])
    assert {group.rsplit("-", 1)[1] for group in groups} == {"framer", "streams"}
    assert "frames" in backfill["lag_unit"]
    measured = [point for point in backfill["lag_curve"] if point["lag"] >= 0]
    assert measured, "Kafka never answered the lag requests"
    for point in measured:
        assert set(point["lag_by_group"]) == groups
        assert point["lag"] == sum(point["lag_by_group"].values())


def test_each_worker_has_its_share_of_the_pipeline(figures: Figures) -> None:
    shares = figures[0]["pipeline"]["share_per_worker"]
    assert len(shares) == figures[0]["pipeline"]["workers"] == 1
    assert shares == [1.0]


def test_messages_per_event_are_counted_on_every_topic(figures: Figures) -> None:
    report = figures[0]
    messages = report["messages_per_event"]
    assert messages["total"] > 0
    assert messages["agency_events"] >= report["ceiling"]["events"]
    by_topic = messages["by_topic"]
    # Each agency event is one message on its agency topic.
    agency = sum(share for topic, share in by_topic.items() if topic.endswith(".events"))
    assert agency == pytest.approx(1.0, abs=0.01)
    for topic in ("record-frames", "person-events", "identity-input"):
        assert by_topic[topic] > 0, topic
    assert any(topic.endswith("-changelog") and share > 0 for topic, share in by_topic.items())
    assert messages["total"] == pytest.approx(sum(by_topic.values()), abs=0.05)


def test_logic_processes_the_events_the_ceiling_read(figures: Figures) -> None:
    report = figures[0]
    logic = report["logic"]
    assert logic["events"] == report["ceiling"]["events"]
    assert logic["events_per_s"] > 0
    assert set(logic["us_per_event"]) == {"identity", "timeline", "alerts"}
    assert all(spent > 0 for spent in logic["us_per_event"].values())
    assert report["pipeline"]["ratio_to_logic"] > 0


def test_latency_has_quantiles(figures: Figures) -> None:
    timeline = figures[0]["latency"]["timeline"]
    assert timeline["count"] > 0
    assert 0 < timeline["p50_ms"] <= timeline["p95_ms"] <= timeline["p99_ms"]


def test_ingest_of_both_connectors(figures: Figures) -> None:
    ingest = figures[0]["ingest"]
    assert ingest["webhook"]["accepted"] == 200
    assert ingest["webhook"]["records_per_s"] > 0
    assert ingest["mllp"]["acknowledged"] == 200
    assert ingest["mllp"]["records_per_s"] > 0


def test_memory_of_every_worker_at_each_point(figures: Figures) -> None:
    memory = figures[0]["memory"]
    for point in ("start_mib", "after_backfill_mib", "after_soak_mib"):
        assert memory[point]["worker-0"] > 0
    # The tables hold the events the worker took in, so RocksDB's share is there too.
    for point in ("after_backfill", "after_soak"):
        assert 0 < memory["rocksdb_mib"][point]["worker-0"] < memory[f"{point}_mib"]["worker-0"]
    assert figures[0]["soak"]["rss_samples"]


def test_plot_is_written(figures: Figures) -> None:
    png = figures[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headline_figures_are_printed_beside_the_targets(figures: Figures) -> None:
    report, _, printed = figures
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    pipeline = next(row for row in rows if row.startswith("| pipeline"))
    assert f"{report['pipeline']['events_per_s_per_worker']:,.0f} events/s" in pipeline
    assert "at least 3,000 events/s" in pipeline
    assert any(row.startswith("| backfill of 300 events") for row in rows)
    assert any("(ceiling)" in row for row in rows) and any("(logic)" in row for row in rows)
    messages = next(row for row in rows if row.startswith("| Kafka messages per agency event"))
    assert f"**{report['messages_per_event']['total']:.2f}**" in messages
    assert "at most 3" in messages
