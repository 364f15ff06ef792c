"""The records of a CSV file, each with the lines it came from, read with bounded memory.

csv.reader alone holds a line of any length, and a quote left open makes it read the rest of
the file as one field. Here no line is held past `max_chars` characters (the rest of a longer
one is skipped), no record grows past `max_chars`, and a record that spans several lines but
is bad gives back every line after its first, to be read again as records of their own: an
unbalanced quote costs one row, not the rest of the file.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from backbone.errors import BadInput


@dataclass(frozen=True)
class Line:
    """One line of the file as read: at most `max_chars` + 1 characters of it."""

    number: int
    text: str
    overlong: bool


@dataclass(frozen=True)
class Record:
    """A record's lines and fields, or the problem that kept it from being read (then only
    its first line, and no fields)."""

    lines: tuple[Line, ...]
    fields: list[str]
    problem: BadInput | None = None

    @property
    def line(self) -> int:
        """The number of its first line."""
        return self.lines[0].number

    @property
    def raw(self) -> str:
        """The text it was read from, line breaks included."""
        return "".join(line.text for line in self.lines)


class CsvRecords:
    """Reads the records of `source` one at a time."""

    def __init__(self, source: TextIO, max_chars: int) -> None:
        self._feed = _LineFeed(source, max_chars)
        self._reader = csv.reader(self._feed)

    def next(self) -> Record | None:
        """The next record, None at the end of the file; blank lines are skipped."""
        while True:
            try:
                fields = next(self._reader, None)
            except csv.Error as exc:
                return self._unreadable(BadInput(f"is not valid CSV: {exc}", field="row"))
            except BadInput as problem:
                return self._unreadable(problem)
            if fields is None:
                return None
            lines = self._feed.take()
            if fields:
                return Record(tuple(lines), fields)

    def first_line_only(self, record: Record, problem: BadInput) -> Record:
        """The record just read, cut to its first line, with `problem`; the lines after it
        are read again as records of their own (an unbalanced quote had joined them)."""
        self._feed.read_again(record.lines[1:])
        return Record(record.lines[:1], [], problem)

    def _unreadable(self, problem: BadInput) -> Record:
        return self.first_line_only(Record(tuple(self._feed.take()), []), problem)


class _LineFeed:
    """The lines csv.reader reads, remembering those of the record it is on."""

    def __init__(self, source: TextIO, max_chars: int) -> None:
        self._source = source
        self._max = max_chars
        self._number = 0
        self._again: deque[Line] = deque()
        self._record: list[Line] = []
        self._chars = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._again.popleft() if self._again else self._read()
        if self._record and (line.overlong or self._chars + len(line.text) > self._max):
            self._again.appendleft(line)  # it starts the next record, if any
            raise BadInput(f"has a quote not closed within {self._max} characters", field="row")
        self._record.append(line)
        self._chars += len(line.text)
        if line.overlong:
            raise BadInput(f"is longer than {self._max} characters", field="row")
        return line.text

    def _read(self) -> Line:
        text = self._source.readline(self._max + 1)
        if not text:
            raise StopIteration
        self._number += 1
        overlong = len(text) > self._max
        if overlong:
            self._skip_rest_of(text)
        return Line(self._number, text, overlong)

    def _skip_rest_of(self, text: str) -> None:
        while text and not text.endswith(("\n", "\r")):
            text = self._source.readline(self._max)

    def take(self) -> list[Line]:
        """The lines of the record csv.reader just returned or failed on."""
        lines, self._record, self._chars = self._record, [], 0
        return lines

    def read_again(self, lines: tuple[Line, ...]) -> None:
        """Have `lines` read again, before any line not read yet."""
        self._again.extendleft(reversed(lines))
