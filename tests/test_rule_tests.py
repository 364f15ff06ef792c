"""`backbone rules test` and `backbone rules check --with-tests`: rule tests as files.

The shipped test files (deploy/rules/tests/) must pass; a wrong expectation fails naming the
test with what was expected and raised; a malformed file is refused naming file, test and
field; a rule file whose tests fail is refused by `rules check --with-tests`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from streams.alerting.in_memory import InMemoryAlerting
from streams.alerting.rule_tests import load_test_file
from streams.alerting.rule_tests.files import Arrival
from streams.alerting.rule_tests.running import fold
from streams.alerting.rules import SHIPPED_RULES

SHIPPED_TESTS = sorted((SHIPPED_RULES.parent / "tests").glob("*.yaml"))
CONCERN = "{id: s1, person: p1, type: safeguarding_concern, occurred_at: 2026-03-01T09:00:00Z}"
ATTENDANCE = (
    "{id: ae, person: p1, type: attendance, occurred_at: 2026-03-02T09:00:00Z, "
    "details: {encounter: {patient_class: E}}}"
)


def rules_test(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rules", *map(str, args)])
    return result.exit_code, result.output


def count_tests() -> int:
    return sum(len(load_test_file(path).tests) for path in SHIPPED_TESTS)


def test_the_shipped_rule_tests_pass() -> None:
    assert [path.name for path in SHIPPED_TESTS] == [f"r{n}.yaml" for n in range(1, 7)]
    code, output = rules_test("test", *SHIPPED_TESTS)

    assert code == 0, output
    *lines, summary = output.splitlines()
    assert lines and all(line.startswith("ok   ") for line in lines)
    assert summary == f"{len(lines)} test(s): {len(lines)} ok, 0 failed"


def test_a_wrong_expectation_fails_naming_the_test_with_what_was_expected_and_raised(
    tmp_path: Path,
) -> None:
    test_file = tmp_path / "r6.yaml"
    test_file.write_text(
        f"""
rule_files: [{SHIPPED_RULES}]
tests:
  - name: concern and attendance, expected right
    given: [{CONCERN}, {ATTENDANCE}]
    expect: [{{rule: R6, person: p1, state: open, events: [s1, ae]}}]
  - name: concern and attendance, expected without the attendance
    given: [{CONCERN}, {ATTENDANCE}]
    expect: [{{rule: R6, person: p1, state: open, events: [s1]}}]
  - name: concern and attendance, expected to raise nothing
    given: [{CONCERN}, {ATTENDANCE}]
    expect: [{{rule: R6, none: true}}]
  - name: a concern alone, expected to raise
    given: [{CONCERN}]
    expect: [{{rule: R6, person: p1, state: open, events: [s1]}}]
"""
    )
    code, output = rules_test("test", test_file)

    assert code == 1
    assert output.splitlines() == [
        f"ok   {test_file}: concern and attendance, expected right",
        f"FAIL {test_file}: concern and attendance, expected without the attendance",
        "  expected R6 person=p1 open events=[s1]: not raised",
        "  raised R6 person=p1 open events=[s1, ae]: not expected",
        f"FAIL {test_file}: concern and attendance, expected to raise nothing",
        "  expected no R6 alert: raised R6 person=p1 open events=[s1, ae]",
        f"FAIL {test_file}: a concern alone, expected to raise",
        "  expected R6 person=p1 open events=[s1]: not raised",
        "  no alert was raised",
        "4 test(s): 1 ok, 3 failed",
    ]


def test_malformed_test_files_are_refused_naming_file_test_and_field(tmp_path: Path) -> None:
    bad_lateness = tmp_path / "lateness.yaml"
    bad_lateness.write_text(f"rule_files: [{SHIPPED_RULES}]\nlateness: 1 day\ntests: []\n")
    bad_tests = tmp_path / "tests.yaml"
    bad_tests.write_text(
        f"""
rule_files: [{SHIPPED_RULES}, missing.yaml]
tests:
  - name: broken
    given:
      - {{person: p1, type: safeguarding_concern, occurred_at: 2026-03-01T09:00:00}}
      - {{person: p1, type: attendence, occurred_at: 2026-03-02T09:00:00Z}}
      - {{person: p1, type: discharge, agency: housing, occurred_at: 2026-03-02T09:00:00Z}}
      - {{clock: 2026-03-03T00:00:00Z, person: p1}}
      - 42
    expect:
      - {{rule: R1, person: p1, state: closed, events: [d1]}}
      - {{rule: R1, person: p1}}
  - name: wrong in what it names
    given:
      - {{id: d1, person: p1, type: discharge, occurred_at: 2026-03-02T09:00:00Z}}
      - {{id: d1, person: p1, type: discharge, occurred_at: 2026-03-02T10:00:00Z}}
      - {{clock: 2026-03-04T00:00:00Z}}
      - {{clock: 2026-03-03T00:00:00Z}}
    expect:
      - {{rule: R9, person: p1, state: open, events: [d1]}}
      - {{rule: R1, person: p2, state: open, events: [d2]}}
  - name: wrong in what it names
    given: [{CONCERN}]
    expect: []
  - given: []
    expect: []
"""
    )
    code, output = rules_test("test", bad_lateness, bad_tests)

    assert code == 2
    assert output.splitlines() == [
        f"{bad_lateness}: lateness: '1 day' is not a duration like 90d, 4h, 30m or 2w",
        f"{bad_lateness}: tests: List should have at least 1 item after validation, not 0",
        *(
            f"{bad_tests}: {problem}"
            for problem in (
                f"rule_files[1]: {tmp_path / 'missing.yaml'}: cannot read: No such file or "
                "directory",
                "test 'broken' given[0].occurred_at: Input should have timezone info",
                "test 'broken' given[1].type: 'attendence' is not an event type of any agency",
                "test 'broken' given[2].agency: housing does not emit discharge (health does)",
                "test 'broken' given[3].person: Extra inputs are not permitted",
                "test 'broken' given[4]: an event {person, type, occurred_at, ...} or "
                "{clock: time}",
                "test 'broken' expect[0].state: Input should be 'open' or 'withdrawn'",
                "test 'broken' expect[1]: an expected alert needs person, state and events "
                "(or none: true)",
                "test 'wrong in what it names' given[1].id: 'd1' is the id of given[0] too, a "
                "different event (only an exact repeat may share it)",
                "test 'wrong in what it names' given[3].clock: goes back from "
                "2026-03-04T00:00:00+00:00",
                "test 'wrong in what it names' expect[0].rule: no rule R9 in the rule files",
                "test 'wrong in what it names' expect[1].person: 'p2' is no given event's person",
                "test 'wrong in what it names' expect[1].events[0]: no given event has the id 'd2'",
                "test 'wrong in what it names' name: used by an earlier test too",
                "tests[3] name: Field required",
                "tests[3] given: List should have at least 1 item after validation, not 0",
            )
        ),
    ]


def test_rules_check_with_tests_refuses_a_rule_file_whose_tests_fail(tmp_path: Path) -> None:
    code, output = rules_test("check", "--with-tests", SHIPPED_RULES)
    assert code == 0, output
    assert output.splitlines()[-1] == f"{SHIPPED_RULES}: 6 rules ok, {count_tests()} tests passed"

    # A longer dedup for R6: its test of a new alert after 14 days fails.
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED_RULES.read_text().replace("dedup: 14d", "dedup: 20d"))
    code, output = rules_test("check", "--with-tests", rules)
    assert code == 1
    assert "rules ok" not in output
    assert output.splitlines()[-1] == f"{rules}: refused: no test file in its tests/ names it"

    (tmp_path / "tests").mkdir()
    shutil.copy(SHIPPED_RULES.parent / "tests" / "r6.yaml", tmp_path / "tests" / "r6.yaml")
    (tmp_path / "tests" / "other.yaml").write_text("rule_files: [../other.yaml]\ntests: []\n")
    code, output = rules_test("check", "--with-tests", rules)
    failed = "a concern 14 days after the alert's is absorbed, one 15 days after is a new alert"
    assert code == 1
    assert f"FAIL {tmp_path / 'tests' / 'r6.yaml'}: {failed}" in output.splitlines()
    assert output.splitlines()[-1] == f"{rules}: refused: 1 test(s) failed: {failed}"
    assert "other.yaml" not in output  # it names another rule file: not run


def test_an_alert_whose_last_step_withdrew_it_reads_withdrawn() -> None:
    test_file = load_test_file(SHIPPED_TESTS[5])
    alerting = InMemoryAlerting(test_file.rules, test_file.lateness)
    for step in next(t for t in test_file.tests if "is absorbed" in t.name).given:
        assert isinstance(step, Arrival)
        alerting.feed(step.person_id, step.entry, step.household)
    steps = alerting.result.steps
    first_alert = steps[0][0]
    withdrawn = (first_alert, {"alert_id": first_alert, "change": "withdrawn", "alert": None})

    before = [(a.rule_id, a.events, a.state) for a in fold(steps)]
    after = [(a.rule_id, a.events, a.state) for a in fold([*steps, withdrawn])]

    assert [step["change"] for _, step in steps] == [
        "raised",
        "absorbed",
        "raised",
    ]
    assert before == [("R6", ["s1", "ae", "s2"], "open"), ("R6", ["ae", "s3"], "open")]
    assert after == [("R6", ["s1", "ae", "s2"], "withdrawn"), ("R6", ["ae", "s3"], "open")]
