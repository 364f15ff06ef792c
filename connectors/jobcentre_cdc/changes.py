"""Row changes as the connector sees them, decoded from wal2json (format-version 2) output.

A batch read from the slot is a run of whole transactions in commit order: `B` (begin), the
row changes `I` / `U` / `D`, then `C` (commit), whose `nextlsn` is the end of the commit record.
Confirming that LSN on the slot means "everything up to and including this transaction".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from backbone.errors import BadInput
from connectors.jobcentre_cdc.tables import CaseSchema, Table

SNAPSHOT_LSN = "snapshot"


class Kind(StrEnum):
    """What happened to the row."""

    SNAPSHOT = "snapshot"  # the row as it was when the connector first started
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    """One row change of a captured table, keyed by reference column names.

    `old` is the row before an update or delete when the table's replica identity gives it
    whole (REPLICA IDENTITY FULL); None when only the key is known.
    """

    kind: Kind
    table: Table
    lsn: str
    committed_at: datetime
    row: dict[str, Any]
    old: dict[str, Any] | None
    raw: bytes

    @property
    def source(self) -> str:
        """Where the change came from, for dead letters and logs."""
        return f"postgres:{self.table.qualified}@{self.lsn}"


@dataclass(frozen=True)
class Batch:
    """The changes of whole transactions and the LSN that confirms all of them."""

    changes: list[Change]
    rejected: list[tuple[bytes, BadInput, str]]  # raw output that is not a usable change
    confirm_lsn: str | None


def decode_batch(outputs: list[str], schema: CaseSchema) -> Batch:
    """Decode the slot's output rows (wal2json JSON documents) of one peek."""
    changes: list[Change] = []
    rejected: list[tuple[bytes, BadInput, str]] = []
    confirm_lsn: str | None = None
    for output in outputs:
        document = json.loads(output)
        action = document.get("action")
        if action == "C":
            confirm_lsn = str(document["nextlsn"])
        elif action in ("I", "U", "D"):
            try:
                change = _decode_change(document, output.encode(), schema)
            except BadInput as exc:
                rejected.append((output.encode(), exc, f"postgres@{document.get('lsn')}"))
                continue
            if change is not None:
                changes.append(change)
    return Batch(changes, rejected, confirm_lsn)


def _decode_change(document: dict[str, Any], raw: bytes, schema: CaseSchema) -> Change | None:
    table = schema.by_name(document["schema"], document["table"])
    if table is None:
        return None  # wal2json's add-tables filters these out; tolerate a wider filter
    kind = {"I": Kind.INSERT, "U": Kind.UPDATE, "D": Kind.DELETE}[document["action"]]
    new = _columns(document.get("columns"))
    identity = _columns(document.get("identity"))
    try:
        committed_at = datetime.fromisoformat(document["timestamp"])
    except (KeyError, ValueError) as exc:
        raise BadInput(f"no commit time in the change: {exc}", field="timestamp") from exc
    whole_identity = set(table.columns.values()) <= set(identity)
    if kind is Kind.DELETE:
        row, old = table.to_reference(identity), None
    else:
        row = table.to_reference(new)
        old = table.to_reference(identity) if kind is Kind.UPDATE and whole_identity else None
    return Change(kind, table, str(document["lsn"]), committed_at, row, old, raw)


def _columns(columns: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {column["name"]: column["value"] for column in columns or []}


def snapshot_change(table: Table, row: dict[str, Any], taken_at: datetime) -> Change:
    """A row read by the initial snapshot, as a change of kind SNAPSHOT."""
    raw = json.dumps({"table": table.qualified, "row": row}, default=str).encode()
    return Change(Kind.SNAPSHOT, table, SNAPSHOT_LSN, taken_at, table.to_reference(row), None, raw)
