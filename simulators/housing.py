"""Plays the housing management system: writes nightly `tenancies_YYYYMMDD.csv` exports.

A snapshot is written under a temporary name and renamed when complete, or (like systems that
cannot rename) written under its final name and followed by a `.done` marker. Populations are
generated from the row number, so a 1,000,000-row export takes seconds and is the same every
time. Run as `python -m simulators.housing --drop-dir DIR --night 2026-11-01 --rows 1000000`.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HEADER = [
    "as_of",
    "tenancy_ref",
    "tenant_ref",
    "national_id",
    "family_name",
    "given_name",
    "birth_date",
    "address",
    "postcode",
    "tenancy_status",
    "arrears_amount",
    "arrears_weeks",
    "notice",
    "homelessness_application",
    "household_size",
]
FAMILY_NAMES = ["Nowak", "Smith", "Ó Súilleabháin", "Okafor", "Jones", "Müller", "Patel", "Kaur"]
GIVEN_NAMES = ["Zofia", "Daniel", "Aoife", "Chidi", "Megan", "Jürgen", "Priya", "Amrit"]
STREETS = ["Hyde Park Road", "Woodhouse Lane", "Meanwood Road", "Chapeltown Road"]


@dataclass(frozen=True)
class Tenancy:
    """A tenancy as the housing management system holds it."""

    tenancy_ref: str
    tenant_ref: str
    national_id: str | None
    family_name: str
    given_name: str
    birth_date: date
    address: str
    postcode: str | None
    status: str = "active"  # active | ended
    arrears_amount: str = "0.00"  # pounds
    arrears_weeks: float = 0.0
    notice: str = "none"  # none | notice_seeking_possession | notice_to_quit | eviction_warrant
    homelessness_application: str = "none"  # none | open | accepted | closed
    household_size: int = 1

    def changed(self, **changes: Any) -> Tenancy:
        """The same tenancy with some fields changed (the next night's version)."""
        return replace(self, **changes)

    def row(self, as_of: date) -> list[str]:
        return [
            as_of.isoformat(),
            self.tenancy_ref,
            self.tenant_ref,
            self.national_id or "",
            self.family_name,
            self.given_name,
            self.birth_date.isoformat(),
            self.address,
            self.postcode or "",
            self.status,
            self.arrears_amount,
            f"{self.arrears_weeks:g}",
            self.notice,
            self.homelessness_application,
            str(self.household_size),
        ]


def tenancy(number: int, prefix: str = "T") -> Tenancy:
    """The `number`-th tenancy of a generated population (deterministic)."""
    return Tenancy(
        tenancy_ref=f"{prefix}-TEN-{number:07d}",
        tenant_ref=f"{prefix}-PER-{number:07d}",
        national_id=None if number % 5 == 0 else f"QQ{number % 1_000_000:06d}C",
        family_name=FAMILY_NAMES[number % len(FAMILY_NAMES)],
        given_name=GIVEN_NAMES[(number // 7) % len(GIVEN_NAMES)],
        birth_date=date(1950, 1, 1) + timedelta(days=number % 20_000),
        address=f"{number % 300 + 1} {STREETS[number % len(STREETS)]}, Leeds",
        postcode=f"ls{number % 30 + 1} {number % 9 + 1}aa",
        household_size=number % 6 + 1,
    )


def population(size: int, prefix: str = "T") -> Iterator[Tenancy]:
    """`size` generated tenancies, all active, no arrears."""
    return (tenancy(number, prefix) for number in range(size))


class HousingManagementSystem:
    """Writes nightly exports into the backbone's drop folder the way the real system does."""

    def __init__(self, drop_dir: Path) -> None:
        self.drop_dir = drop_dir
        drop_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def file_name(night: date) -> str:
        return f"tenancies_{night:%Y%m%d}.csv"

    def export(self, night: date, tenancies: Iterable[Tenancy], *, marker: bool = False) -> Path:
        """Write the night's snapshot of `tenancies`; returns its final path."""
        rows = (t.row(night) for t in tenancies)
        return self.export_rows(night, rows, marker=marker)

    def export_rows(
        self, night: date, rows: Iterable[list[str] | str], *, marker: bool = False
    ) -> Path:
        """Write a snapshot from rows; a `str` row is written as a raw line (to make bad ones)."""
        final = self.drop_dir / self.file_name(night)
        target = final if marker else self.drop_dir / f".{final.name}.partial"
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(HEADER)
            for row in rows:
                if isinstance(row, str):
                    out.write(row + "\n")
                else:
                    writer.writerow(row)
        if marker:
            final.with_name(final.name + ".done").touch()
        else:
            os.replace(target, final)  # readers see the whole file or none of it
        return final


def main(argv: list[str] | None = None) -> None:
    """Write one generated export (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Write a nightly tenancies export")
    parser.add_argument("--drop-dir", type=Path, required=True)
    parser.add_argument("--night", type=date.fromisoformat, default=date.today())
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--marker", action="store_true", help="final name + .done marker")
    args = parser.parse_args(argv)
    system = HousingManagementSystem(args.drop_dir)
    path = system.export(args.night, population(args.rows), marker=args.marker)
    print(path)


if __name__ == "__main__":
    main()
