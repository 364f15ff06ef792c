"""Remembered answers per Idempotency-Key, so a repeated delivery gets the first answer.

Bounded twice: at most `capacity` keys, each for at most `ttl_s` seconds after its answer.
Times are seconds since the epoch, so answers read back after a restart compare with them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """A final answer given to a delivery: HTTP status and JSON body."""

    status: int
    body: dict[str, str]


@dataclass(frozen=True)
class Remembered:
    """The answer given to one key: for which body (its SHA-256) and when."""

    body_digest: str
    answer: Answer
    answered_at: float


class Conflict(Exception):  # noqa: N818 - a verdict, not a failure of this code
    """The key was used before with a different body."""


class IdempotencyKeys:
    """The newest `capacity` keys answered in the last `ttl_s` seconds, oldest first."""

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._answers: OrderedDict[str, Remembered] = OrderedDict()

    def previous(self, key: str, body_digest: str, now: float) -> Answer | None:
        """The answer given to this key and body before; Conflict for another body.

        A key whose answer is older than the time to live is new again.
        """
        seen = self._answers.get(key)
        if seen is None or seen.answered_at <= now - self._ttl_s:
            return None
        if seen.body_digest != body_digest:
            raise Conflict(key)
        return seen.answer

    def remember(self, key: str, remembered: Remembered) -> None:
        """Keep the answer given to `key`, forgetting the oldest beyond capacity or age."""
        self._answers[key] = remembered
        self._answers.move_to_end(key)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        expired_before = remembered.answered_at - self._ttl_s
        while self._answers:
            oldest = next(iter(self._answers.values()))
            if oldest.answered_at > expired_before:
                break
            self._answers.popitem(last=False)
