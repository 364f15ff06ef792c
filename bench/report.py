"""The benchmark's report: every figure, and the machine it was measured on, as JSON."""

from __future__ import annotations

import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backbone.settings import REPO_ROOT

KAFKA_POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"


def machine() -> dict[str, Any]:
    """CPU count and model, RAM, Python and Kafka versions, and when."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": round(_ram_bytes() / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": _kafka_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_report(figures: dict[str, Any], path: Path) -> None:
    """Write the figures as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _kafka_version() -> str:
    """The version of the project's own broker (deploy/kafka/pom.xml)."""
    found = re.search(r"<kafka.version>(.+?)</kafka.version>", _read(str(KAFKA_POM)))
    return found.group(1) if found else "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""
