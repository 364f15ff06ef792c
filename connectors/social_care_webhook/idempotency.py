"""Remembered answers per Idempotency-Key, so a repeated delivery gets the first answer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """A final answer given to a delivery: HTTP status and JSON body."""

    status: int
    body: dict[str, str]


class Conflict(Exception):  # noqa: N818 - a verdict, not a failure of this code
    """The key was used before with a different body."""


class IdempotencyKeys:
    """The last `capacity` keys with the body digest and the answer given.

    Kept in memory: after a restart a repeat is published again with the same event id, and
    downstream dedup by event id keeps it off the timeline twice.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._answers: OrderedDict[str, tuple[str, Answer]] = OrderedDict()

    def previous(self, key: str, body_digest: str) -> Answer | None:
        """The answer given to this key and body before; Conflict for another body."""
        seen = self._answers.get(key)
        if seen is None:
            return None
        digest, answer = seen
        if digest != body_digest:
            raise Conflict(key)
        return answer

    def remember(self, key: str, body_digest: str, answer: Answer) -> None:
        self._answers[key] = (body_digest, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
