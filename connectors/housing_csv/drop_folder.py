"""The drop folder the housing system writes its nightly exports into.

Only complete files are taken: `tenancies_YYYYMMDD.csv` under its final name (the system
writes under a temporary name and renames) or, when markers are required, once
`tenancies_YYYYMMDD.csv.done` exists too. Anything else (temporary names, other files) is left
alone. Files that were dealt with move to `processed/` or `refused/` beside them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SNAPSHOT_NAME = re.compile(r"^tenancies_(\d{8})\.csv$")
MARKER_SUFFIX = ".done"
PROCESSED = "processed"
REFUSED = "refused"


@dataclass(frozen=True)
class SnapshotFile:
    """A complete export waiting in the drop folder."""

    path: Path
    date: str  # YYYYMMDD, from the name: the night it was taken

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def marker(self) -> Path:
        return self.path.with_name(self.path.name + MARKER_SUFFIX)

    def sha256(self) -> str:
        """Checksum of the file's bytes, read in blocks."""
        digest = hashlib.sha256()
        with self.path.open("rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


class DropFolder:
    """Lists complete snapshots oldest first and moves them aside once dealt with."""

    def __init__(self, path: Path, require_marker: bool) -> None:
        self.path = path
        self._require_marker = require_marker

    def ready(self) -> list[SnapshotFile]:
        """Complete snapshots, oldest night first (a name with an impossible date included,
        so that it is refused rather than ignored forever)."""
        self.path.mkdir(parents=True, exist_ok=True)
        found = []
        for entry in self.path.iterdir():
            match = SNAPSHOT_NAME.match(entry.name)
            if match is None or not entry.is_file():
                continue
            snapshot = SnapshotFile(entry, match.group(1))
            if self._require_marker and not snapshot.marker.exists():
                continue
            found.append(snapshot)
        return sorted(found, key=lambda snapshot: snapshot.date)

    def oldest_waiting_since(self) -> float | None:
        """When the oldest complete snapshot still here became complete (Unix time: its
        marker's mtime when markers are required, else the file's), or None if none waits."""
        completed = [
            (snapshot.marker if self._require_marker else snapshot.path).stat().st_mtime
            for snapshot in self.ready()
        ]
        return min(completed, default=None)

    @staticmethod
    def has_valid_date(snapshot: SnapshotFile) -> bool:
        return _is_date(snapshot.date)

    def move_aside(self, snapshot: SnapshotFile, subfolder: str) -> Path:
        """Move the file (and its marker) into `subfolder`, never overwriting an earlier one."""
        target_dir = self.path / subfolder
        target_dir.mkdir(exist_ok=True)
        target = _free_name(target_dir / snapshot.name)
        # The file first: a marker left behind on a crash in between is harmless.
        snapshot.path.replace(target)
        if snapshot.marker.exists():
            snapshot.marker.replace(target.with_name(target.name + MARKER_SUFFIX))
        return target


def _free_name(wanted: Path) -> Path:
    candidate, copy = wanted, 1
    while candidate.exists():
        candidate = wanted.with_name(f"{wanted.name}.{copy}")
        copy += 1
    return candidate
