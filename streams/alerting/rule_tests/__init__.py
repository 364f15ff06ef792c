"""`backbone rules test`: rule tests as files, run against the alert processor's own code.

`files.py` reads and validates a test file (the format is in its docstring and in README,
"Rule tests"); `running.py` runs its tests and says how each went.
"""

from streams.alerting.rule_tests.files import (
    RuleTestFile,
    RuleTestFileError,
    load_test_file,
    tests_naming,
)
from streams.alerting.rule_tests.running import Verdict, run_file

__all__ = [
    "RuleTestFile",
    "RuleTestFileError",
    "Verdict",
    "load_test_file",
    "run_file",
    "tests_naming",
]
