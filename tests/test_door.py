"""Door codes keyed by DTMF."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from intercom.app.door import Decision, DoorCodes, Lock, Lockout


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


def wrong(lockout: Lockout, call: str, caller: str, now: float, times: int = 1) -> list[Lock]:
    locks: list[Lock] = []
    for _ in range(times):
        locks += lockout.wrong(call, caller, now)
    return locks


def test_three_wrong_codes_end_code_entry_for_the_call_and_lock_the_caller() -> None:
    lockout = Lockout(per_call=3, overall=10, base=60, longest=3600)
    assert wrong(lockout, "c1", "sip:a@x", 0.0, 2) == []
    assert lockout.locked("c1", "sip:a@x", 1.0) is None
    assert wrong(lockout, "c1", "sip:a@x", 2.0) == [Lock("call", 0.0), Lock("caller", 60.0)]
    assert lockout.locked("c1", "sip:a@x", 3.0) == Lock("call", 0.0)
    # a redial does not start afresh
    lockout.call_ended("c1")
    assert lockout.locked("c2", "sip:a@x", 10.0) == Lock("caller", 52.0)
    # another caller is not affected
    assert lockout.locked("c3", "sip:b@x", 10.0) is None


def test_each_lockout_of_a_caller_is_twice_as_long_up_to_the_longest() -> None:
    lockout = Lockout(per_call=3, overall=1000, base=60, longest=300)
    now, lengths = 0.0, []
    for i in range(5):
        locks = wrong(lockout, f"c{i}", "sip:a@x", now, 3)
        lengths.append(next(lock.seconds for lock in locks if lock.scope == "caller"))
        now += lengths[-1] + 1                       # redial once it has passed
        assert lockout.locked(f"c{i + 1}", "sip:a@x", now) is None
    assert lengths == [60, 120, 240, 300, 300]


def test_the_right_code_clears_its_callers_backoff_and_a_long_quiet_spell_too() -> None:
    lockout = Lockout(per_call=3, overall=1000, base=60, longest=600)
    wrong(lockout, "c1", "sip:a@x", 0.0, 3)
    wrong(lockout, "c2", "sip:a@x", 61.0, 3)                     # second lock: 120 s
    assert lockout.locked("c3", "sip:a@x", 100.0) == Lock("caller", 81.0)
    lockout.right("sip:a@x")
    assert lockout.locked("c3", "sip:a@x", 100.0) is None
    assert wrong(lockout, "c3", "sip:a@x", 100.0, 3)[1] == Lock("caller", 60.0)
    wrong(lockout, "c4", "sip:a@x", 161.0, 3)                    # 120 s again
    locks = wrong(lockout, "c5", "sip:a@x", 161.0 + 120 + 600 + 1, 3)
    assert locks[1] == Lock("caller", 60.0)                     # quiet > longest: afresh


def test_many_callers_guessing_lock_everyone_out() -> None:
    lockout = Lockout(per_call=3, overall=10, base=60, longest=3600)
    locks = [lock for i in range(10) for lock in wrong(lockout, f"c{i}", f"sip:{i}@x", 5.0)]
    assert locks == [Lock("all", 60.0)]
    assert lockout.locked("c99", "sip:resident@x", 6.0) == Lock("all", 59.0)
    assert lockout.locked("c99", "sip:resident@x", 66.0) is None
