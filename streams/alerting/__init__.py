"""Cross-agency alert rules (README, "Cross-agency alert rules"): the rule file, evaluation and
explanations.

Pure Python, no Faust and no Kafka: the alert processor feeds it timelines and event time.
"""

from streams.alerting.alert import (
    Absorption,
    Alert,
    Deadline,
    ExplainedEvent,
    Explanation,
    Outcome,
    PriorAlert,
)
from streams.alerting.evaluation import RuleEngine
from streams.alerting.rules import (
    SHIPPED_RULES,
    Rule,
    RuleFileError,
    RuleSet,
    Severity,
    load_rules,
    parse_rules,
)
from streams.alerting.view import PersonView

__all__ = [
    "SHIPPED_RULES",
    "Absorption",
    "Alert",
    "Deadline",
    "ExplainedEvent",
    "Explanation",
    "Outcome",
    "PersonView",
    "PriorAlert",
    "Rule",
    "RuleEngine",
    "RuleFileError",
    "RuleSet",
    "Severity",
    "load_rules",
    "parse_rules",
]
