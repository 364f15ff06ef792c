"""One exception hierarchy for the whole backbone.

Callers decide what to do by the class: bad input is dead-lettered and never retried,
a transient failure is retried (or answered with "try again later"), a fatal one stops the
process loudly.
"""


class BackboneError(Exception):
    """Root of every error the backbone raises on purpose."""


class BadInput(BackboneError):  # noqa: N818 - reads better at the raise site than BadInputError
    """Input that can never be processed as it is; `field` names what is wrong."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class TransientError(BackboneError):
    """A dependency (Kafka, a database) cannot take the work now; try again later."""


class FatalError(BackboneError):
    """A misconfiguration or broken invariant; the process should stop."""


class ConfigurationError(FatalError):
    """Settings, rules or schemas that are wrong; raised before any socket opens."""


EXCERPT_CHARS = 40


def excerpt(value: str, limit: int = EXCERPT_CHARS) -> str:
    """`value` quoted for an error message, cut after `limit` characters: a reason travels in
    ACKs, HTTP answers, log lines and dead-letter headers, so a huge bad value must not."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
