"""Door codes keyed by DTMF."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from intercom.app.door import Decision, DoorCodes


def key(codes: DoorCodes, digits: str, start: float = 0.0, step: float = 0.3) -> list[Decision]:
    out: list[Decision] = []
    for i, d in enumerate(digits):
        out += codes.digit(d, start + i * step)
    return out


def test_right_code_with_hash_opens() -> None:
    assert key(DoorCodes(["1234#"], 5), "1234#") == [Decision("open")]


def test_code_without_hash_opens_as_soon_as_complete() -> None:
    codes = DoorCodes(["*1", "1234#"], 5)
    assert key(codes, "*1") == [Decision("open")]


def test_wrong_code_is_rejected_once_when_hash_ends_it() -> None:
    decisions = key(DoorCodes(["1234#"], 5), "9999#")
    assert [d.action for d in decisions] == ["reject"]
    assert "5 digits" in decisions[0].reason


def test_no_early_rejection_on_the_first_wrong_digit() -> None:
    assert key(DoorCodes(["1234#"], 5), "9") == []


def test_attempt_ends_at_the_longest_code_length() -> None:
    codes = DoorCodes(["*1"], 5)
    assert [d.action for d in key(codes, "12")] == ["reject"]
    assert key(codes, "*1", start=10) == [Decision("open")]


def test_code_buried_in_a_longer_string_does_not_open() -> None:
    codes = DoorCodes(["1234#"], 5)
    actions = [d.action for d in key(codes, "01234#")]
    assert "open" not in actions


def test_partial_code_times_out() -> None:
    codes = DoorCodes(["1234#"], 5)
    assert key(codes, "12") == []
    assert codes.deadline() == 0.3 + 5
    assert codes.expire(4.0) is None
    expired = codes.expire(5.4)
    assert expired is not None and expired.action == "reject" and "timed out" in expired.reason
    assert key(codes, "1234#", start=6) == [Decision("open")]


def test_digit_after_a_timeout_reports_the_timeout_first() -> None:
    codes = DoorCodes(["1234#"], 5)
    key(codes, "12")
    decisions = codes.digit("1", 20.0)
    assert [d.action for d in decisions] == ["reject"]
    assert key(codes, "234#", start=20.3) == [Decision("open")]


def test_no_codes_means_never_open() -> None:
    codes = DoorCodes([], 5)
    assert all(d.action == "reject" for d in key(codes, "1234#"))



@given(st.text(alphabet="0123456789*#", max_size=40))
def test_only_a_whole_attempt_equal_to_the_code_opens(digits: str) -> None:
    codes = DoorCodes(["1234#"], 5)
    attempt = ""
    for i, d in enumerate(digits):
        decisions = codes.digit(d, i * 0.1)
        attempt += d
        opened = any(x.action == "open" for x in decisions)
        assert opened == (attempt == "1234#")
        if decisions:                    # the attempt ended: the next digit starts a new one
            attempt = ""
