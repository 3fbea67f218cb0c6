"""Score arithmetic: 100 * passed / evaluated; not-evaluated checks are left out."""

from c360.quality import CheckResult, score


def _r(outcome: str) -> CheckResult:
    return CheckResult("c", None, outcome, None, None, "blocking")


def test_all_passed_is_100():
    assert score([_r("passed")] * 4) == 100.0


def test_warned_and_failed_count_against_the_score():
    assert score([_r("passed"), _r("passed"), _r("warned"), _r("failed")]) == 50.0


def test_not_evaluated_is_left_out():
    assert score([_r("passed"), _r("not_evaluated")]) == 100.0
    assert score([_r("not_evaluated")]) is None


def test_rounding():
    assert score([_r("passed"), _r("passed"), _r("warned")]) == 66.67
