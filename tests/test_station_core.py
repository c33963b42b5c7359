"""Whole visits through the station's core on a virtual clock (no sockets, no sleeps).

The rig plays the phones: each target has a script (rings, answers after so
many seconds, is busy, declines, never answers), and the rig answers the
core's actions as the adapter would (a leg placed, media applied, media
stopped with no quality). Time moves only when the rig moves it, to the next
of the core's deadlines and the phones' own moments, so a visit of minutes
takes milliseconds.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from intercom.app import core
from intercom.app.core import LocalError, StationCore
from intercom.config import validate
from intercom.media.sounds import Clip
from intercom.media.tones import BUSY, CALL_ENDING, DOOR_OPENED, RINGBACK, WRONG_CODE
from intercom.sip.events import RegState

A, B, C = "sip:a@10.0.0.1", "sip:b@10.0.0.2", "sip:c@10.0.0.3"


@dataclass
class Script:
    """What a phone does when rung: ring, then answer after ``answer`` seconds
    (None: never), or refuse at once with ``refuse`` (486, 603, ...)."""

    answer: float | None = None
    refuse: int = 0


class Rig:
    def __init__(self, phones: dict[str, Script], registrar: bool = False,
                 sounds: dict[str, Clip] | None = None, **sections: dict[str, Any]) -> None:
        raw: dict[str, Any] = {"call": {"targets": list(phones)[:1]},
                               "door": {"codes": ["1234#"]}}
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        self.core = StationCore(validate(raw), registrar=registrar, sounds=sounds)
        self.phones = phones
        self.now = 0.0
        self.actions: list[core.StationAction] = []
        self.agenda: list[tuple[float, core.Input]] = []     # the phones' moments
        self.target: dict[int, str] = {}
        self.answered: set[int] = set()
        self.media_ok = True                  # the peer's SDP is usable
        self.feed(core.Started())

    # ----- driving ---------------------------------------------------------------
    def feed(self, event: core.Input) -> list[core.StationAction]:
        out = self.core.handle(event, self.now)
        self._take(out)
        return out

    def _take(self, out: list[core.StationAction]) -> None:
        self.actions += out
        replies: list[core.Input] = []
        for action in out:
            replies += self._reply(action)
        for reply in replies:
            self.feed(reply)

    def _reply(self, action: core.StationAction) -> list[core.Input]:
        """What the adapter and the phone make of an action."""
        match action:
            case core.PlaceCall(leg, target):
                self.target[leg] = target
                script = self.phones[target]
                if script.refuse:
                    self.later(0.05, core.Failed(leg, script.refuse, "Busy Here"))
                else:
                    self.later(0.05, core.Progress(leg, 180, "Ringing"))
                    if script.answer is not None:
                        self.later(script.answer, core.Answered(leg, b"v=0 answer"))
                return [core.Placed(leg, f"call-{leg}", "10.0.0.9")]
            case core.EndCall(leg):
                self.agenda = [(t, e) for t, e in self.agenda
                               if getattr(e, "leg", None) != leg]
                # The phone's answer to the BYE or CANCEL comes a moment later.
                if leg in self.answered:
                    self.later(0.02, core.Ended(leg, "BYE", by_remote=False))
                else:
                    self.later(0.02, core.Failed(leg, 487, "Request Terminated"))
                return []
            case core.ApplyMedia(leg, _, purpose):
                if purpose == core.MediaPurpose.ANSWER:
                    self.answered.add(leg)
                return [core.MediaApplied(leg, purpose, self.media_ok, "PCMU")]
            case core.AcceptCall(leg):
                self.answered.add(leg)
                return [core.Accepted(leg, "opus")]
            case core.StopMedia(leg):
                return [core.MediaStopped(leg, "PCMU", None)]
        return []

    def later(self, seconds: float, event: core.Input) -> None:
        self.agenda.append((self.now + seconds, event))

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, through every deadline and phone moment."""
        end = self.now + seconds
        for _ in range(100_000):
            due = [t for t, _ in self.agenda]
            if (d := self.core.next_deadline()) is not None:
                due.append(d)
            nxt = min(due, default=end + 1)
            if nxt > end:
                break
            self.now = max(self.now, nxt)
            moment = [(t, e) for t, e in self.agenda if t <= self.now]
            if moment:
                self.agenda = [(t, e) for t, e in self.agenda if t > self.now]
                for _, event in moment:
                    self.feed(event)
            else:
                self._take(self.core.timer(self.now))
        else:
            raise AssertionError("the core never settled")
        self.now = end

    def press(self, button: str = "bell") -> None:
        self.feed(core.Pressed(button))

    def answer_call(self) -> int:
        """The leg that is the call now."""
        assert self.core.call is not None
        return self.core.call.id

    def keys(self, digits: str, gap: float = 0.3) -> None:
        leg = self.answer_call()
        for digit in digits:
            self.feed(core.Digit(leg, digit))
            self.advance(gap)

    # ----- looking ------------------------------------------------------------------
    def events(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        found = [a.event.to_json() for a in self.actions if isinstance(a, core.Publish)]
        return [e for e in found if e["event"] == kind
                and all(e.get(k) == v for k, v in fields.items())]

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    def relay(self) -> list[bool]:
        return [a.energised for a in self.of(core.SetRelay)]


def test_sequential_ringing_cancels_the_first_at_its_ring_time_and_the_second_answers() -> None:
    rig = Rig({A: Script(), B: Script(answer=3)}, call={"targets": [A, B], "ring_time": 20})
    rig.press()
    assert rig.of(core.LocalSound)[0].sound == RINGBACK["us"]
    rig.advance(19.9)
    assert [e["state"] for e in rig.events("call")] == ["calling", "ringing"]
    rig.advance(0.2)
    assert rig.events("call", state="cancelled", peer=A,
                      reason="no answer within the ring time")
    rig.advance(3.1)
    assert rig.events("call", state="answered", peer=B, reason="PCMU")
    assert rig.core.call_state() == "answered"
    rig.advance(30)
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    record = rig.events("call_record")[0]
    assert (record["outcome"], record["answered_by"], record["tried"]) == ("answered", B,
                                                                           (A, B))
    assert record["seconds"] == 30.2 and not rig.core.busy         # answered at 23.0


def test_parallel_ringing_the_first_to_answer_wins_and_the_others_get_cancel() -> None:
    rig = Rig({A: Script(answer=4), B: Script(answer=2), C: Script()},
              call={"targets": [A, B, C], "strategy": "parallel"})
    rig.press()
    assert [a.target for a in rig.of(core.PlaceCall)] == [A, B, C]
    rig.advance(2.05)
    cancelled = rig.events("call", state="cancelled")
    assert {e["peer"] for e in cancelled} == {A, C}
    assert {e["reason"] for e in cancelled} == {"answered elsewhere"}
    assert rig.events("call", state="answered", peer=B)
    rig.advance(5)                                      # A's answer was called off with it
    assert len(rig.events("call", state="answered")) == 1


def test_two_answers_at_once_make_one_call_and_the_other_is_released() -> None:
    rig = Rig({A: Script(answer=2), B: Script(answer=2)},
              call={"targets": [A, B], "strategy": "parallel"})
    rig.press()
    legs = [a.leg for a in rig.of(core.PlaceCall)]
    rig.advance(1)
    rig.answered.update(legs)                          # both 200s cross the CANCEL
    rig.feed(core.Answered(legs[0], b"v=0"))
    rig.feed(core.Answered(legs[1], b"v=0"))
    assert rig.answer_call() == legs[0]
    assert [a.leg for a in rig.of(core.EndCall)] == [legs[1], legs[1]]
    assert len(rig.events("call", state="answered")) == 1


def test_nobody_answers_in_time_so_the_fallback_rings_then_the_ring_timeout_gives_up() -> None:
    rig = Rig({A: Script(), B: Script()},
              call={"targets": [A], "fallback_targets": [B], "ring_time": 40, "cycles": 2,
                    "ring_timeout": 100})
    rig.press()
    rig.advance(99.9)
    assert [a.target for a in rig.of(core.PlaceCall)] == [A, A, B]
    assert not rig.events("call_record")
    rig.advance(0.2)
    record = rig.events("call_record")[0]
    assert record["outcome"] == "no answer" and record["tried"] == (A, B)
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(BUSY["us"], core.BUSY_SECONDS)
    assert not rig.core.busy and rig.core.next_deadline() is None


def test_every_target_busy_gives_up_at_once_and_a_busy_target_is_not_redialled() -> None:
    rig = Rig({A: Script(refuse=486), B: Script(refuse=486)},
              call={"targets": [A, B], "cycles": 3})
    rig.press()
    rig.advance(1)
    assert [a.target for a in rig.of(core.PlaceCall)] == [A, B]
    assert rig.events("call_record")[0]["outcome"] == "busy"


def test_unusable_sdp_in_the_answer_ends_that_leg_and_the_visit() -> None:
    rig = Rig({A: Script(answer=1)})
    rig.press()
    rig.media_ok = False
    rig.advance(2)
    leg = rig.of(core.PlaceCall)[0].leg
    assert rig.of(core.EndCall) == [core.EndCall(leg)]
    assert rig.events("call_record")[0]["outcome"] == "unavailable"
    assert rig.events("call", state="ended", reason="BYE by the station")
    assert rig.core.call is None and not rig.core.busy


def test_call_limit_warns_extends_by_key_and_hangs_up_at_the_maximum() -> None:
    rig = Rig({A: Script(answer=1)},
              call={"max_duration": 60, "warning_seconds": 10, "extend_seconds": 30})
    rig.press()
    rig.advance(50.9)                                  # answered at 1.0: the warning at 51
    assert rig.events("call", state="answered") and not rig.events("call", state="expiring")
    rig.advance(0.2)
    assert rig.events("call", state="expiring", reason="ends in 10 s; * extends it")
    assert rig.of(core.CallSound)[-1].sound == CALL_ENDING
    rig.keys("*")
    assert rig.events("call", state="extended", reason="by 30 s")
    rig.advance(81 - rig.now - 0.1)
    assert len(rig.events("call", state="expiring")) == 1
    rig.advance(0.2)                                   # the new warning, 10 s before 91
    assert len(rig.events("call", state="expiring")) == 2
    rig.advance(10)
    ended = rig.events("call", state="ended")
    assert ended and ended[0]["reason"] == "BYE by the station"
    assert rig.events("call_record")[0]["seconds"] == 90.0


def test_the_extend_key_is_a_code_digit_before_the_warning_and_while_a_code_is_keyed() -> None:
    rig = Rig({A: Script(answer=1)}, door={"codes": ["*12#"]},
              call={"max_duration": 60, "warning_seconds": 10})
    rig.press()
    rig.advance(2)
    rig.keys("*12#")                                   # long before the warning
    assert rig.events("door", action="opened") and not rig.events("call", state="extended")


def test_a_right_code_opens_the_door_with_the_chime_and_a_wrong_one_plays_to_the_resident(
) -> None:
    rig = Rig({A: Script(answer=1)}, door={"pulse_seconds": 2})
    rig.press()
    rig.advance(2)
    rig.keys("9999#")
    assert rig.events("door", action="rejected", reason="wrong code (5 digits)",
                      source="10.0.0.9")
    tone = rig.of(core.CallSound)[-1]
    assert (tone.sound, tone.to_speaker) == (WRONG_CODE, False)     # the visitor hears nothing
    rig.keys("1234#")
    assert rig.events("door", action="opened", reason="code")
    assert rig.of(core.CallSound)[-1].sound == DOOR_OPENED
    assert rig.relay() == [True]
    rig.advance(2)
    assert rig.relay() == [True, False]
    assert rig.events("relay", energised=False)[0]["seconds"] == pytest.approx(2, abs=0.31)
    texts = " ".join(a.event.text() for a in rig.of(core.Publish)) + \
        " ".join(a.message for a in rig.of(core.Log))
    assert "1234" not in texts and "9999" not in texts             # a code is never shown


def test_a_partly_keyed_code_times_out_as_a_rejection() -> None:
    rig = Rig({A: Script(answer=1)}, door={"digit_timeout": 5})
    rig.press()
    rig.advance(2)
    rig.keys("12", gap=0.1)
    rig.advance(4.7)
    assert not rig.events("door")
    rig.advance(0.3)
    assert rig.events("door", action="rejected", reason="incomplete code (2 digits), timed out")


def test_wrong_codes_lock_the_caller_out_across_redials_until_the_lockout_ends() -> None:
    rig = Rig({A: Script(answer=1)}, door={"max_wrong_codes": 3, "lockout_seconds": 60},
              call={"press_holdoff": 0})
    rig.press()
    rig.advance(2)
    rig.keys("1111#" * 3)
    locks = rig.events("door", action="locked_out")
    assert [e["reason"] for e in locks] == ["call for the rest of the call",
                                            "caller for 60 s"]
    assert rig.of(core.ShowLeds)[-1].shown.status == "locked_out"
    saved = rig.of(core.SaveLockouts)[-1].state
    assert saved[f"caller:{A}"][:2] == (0, 1)
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    rig.press()                                        # the visitor's friend redials
    rig.advance(2)
    rig.keys("1234#")                                  # the right code, not even compared
    assert not rig.events("door", action="opened") and rig.relay() == []
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    rig.advance(60)                                    # the lockout is over, the LED too
    assert rig.of(core.ShowLeds)[-1].shown.status == "idle"
    rig.press()
    rig.advance(2)
    rig.keys("1234#")
    assert rig.events("door", action="opened") and rig.relay() == [True]


def test_a_lockout_saved_before_a_restart_still_holds() -> None:
    rig = Rig({A: Script(answer=1)})
    rig.core = StationCore(rig.core.config)
    rig.feed(core.Started(lockouts={f"caller:{A}": (0, 1, 30.0)}))
    assert rig.of(core.ShowLeds)[-1].shown.status == "idle"      # a caller's lock is theirs
    rig.press()
    rig.advance(2)
    rig.keys("1234#")
    assert rig.relay() == [] and rig.of(core.ShowLeds)[-1].shown.status == "locked_out"
    assert rig.of(core.Log)[-1].message == f"door code ignored from {A}: locked out " \
                                           "(caller, 28 s left)"


def test_the_station_hangs_up_a_while_after_the_door_opened() -> None:
    rig = Rig({A: Script(answer=1)}, door={"hangup_after_open": 5})
    rig.press()
    rig.advance(2)
    rig.keys("1234#")
    rig.advance(4.5)
    assert rig.core.call is not None
    rig.advance(0.6)
    assert rig.events("call", state="ended", reason="BYE by the station")


def test_keys_from_early_media_are_never_a_door_code() -> None:
    rig = Rig({A: Script()})
    rig.press()
    rig.advance(1)
    leg = rig.of(core.PlaceCall)[0].leg
    for digit in "1234#":
        rig.feed(core.Digit(leg, digit))
    assert not rig.events("door") and not rig.events("dtmf")
    assert rig.of(core.Log)[-1].message == f"a DTMF key from {A} outside the call: ignored"


def test_early_media_plays_only_from_a_target_ringing_alone() -> None:
    rig = Rig({A: Script(), B: Script()}, call={"targets": [A, B], "strategy": "parallel"})
    rig.press()
    legs = [a.leg for a in rig.of(core.PlaceCall)]
    rig.feed(core.Progress(legs[0], 183, "Session Progress", b"v=0"))
    assert not rig.of(core.ApplyMedia)
    rig.feed(core.Failed(legs[1], 486, "Busy Here"))
    rig.feed(core.Progress(legs[0], 183, "Session Progress", b"v=0"))
    assert rig.of(core.ApplyMedia)[-1].purpose == core.MediaPurpose.EARLY
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(None)    # our ringback gives way


def test_a_press_within_the_holdoff_or_during_a_call_is_ignored_unless_it_restarts(
) -> None:
    rig = Rig({A: Script(answer=1), B: Script(answer=1)}, call={"press_holdoff": 3})
    rig.press()
    rig.advance(1)
    rig.press()
    assert rig.of(core.Log)[-1].message.endswith("after a call started: ignored (hold-off)")
    rig.advance(5)
    rig.press()
    assert rig.of(core.Log)[-1].message == "bell bell pressed during a call: ignored"
    assert len(rig.of(core.PlaceCall)) == 1

    again = Rig({A: Script(answer=1), B: Script(answer=1)},
                call={"press_holdoff": 0, "press_during_call": "restart",
                      "button_targets": {"bell2": [B]}})
    again.press()
    again.advance(2)
    again.press("bell2")
    again.advance(0.1)
    assert again.events("call", state="ended", peer=A, reason="BYE by the station")
    again.advance(2)
    assert again.events("call", state="answered", peer=B)
    assert [r["button"] for r in again.events("call_record")] == ["bell"]


def test_an_incoming_call_from_a_resident_and_the_ones_refused() -> None:
    rig = Rig({A: Script(answer=1)}, incoming={"callers": [B]})
    rig.feed(core.Offered("in-1", C, ("10.0.0.3", 5060), allowed=False, sdp=b"v=0"))
    assert rig.of(core.RejectCall) == [core.RejectCall("in-1", 403, "Forbidden")]
    assert rig.events("call", state="refused", peer=C)
    assert rig.of(core.Log)[-1].level == logging.WARNING
    rig.feed(core.Offered("in-2", B, ("10.0.0.2", 5060), allowed=True, sdp=b"v=0"))
    accept = rig.of(core.AcceptCall)[0]
    assert accept.listen_only                          # incoming.talk is off by default
    assert rig.events("call", state="answered", peer=B, reason="opus (incoming)")
    rig.feed(core.Offered("in-3", B, ("10.0.0.2", 5060), allowed=True, sdp=b"v=0"))
    assert rig.of(core.RejectCall)[-1] == core.RejectCall("in-3", 486, "Busy Here")
    rig.keys("1234#")
    assert rig.relay() == [True]
    tone = rig.of(core.CallSound)[-1]
    assert tone.sound == DOOR_OPENED and not tone.to_speaker      # only listening at the door
    rig.advance(10)
    rig.feed(core.Ended(accept.leg, "BYE", by_remote=True))
    record = rig.events("call_record")[0]
    assert (record["direction"], record["outcome"], record["seconds"]) == ("incoming",
                                                                          "answered", 11.5)


def test_an_incoming_call_that_cannot_be_answered_is_rejected_and_the_station_is_free() -> None:
    rig = Rig({A: Script()}, incoming={"callers": [B]})
    rig.phones = {}
    rig.core.handle(core.Offered("in-1", B, ("10.0.0.2", 5060), True, b"v=0"), rig.now)
    leg = rig.core.answering
    assert leg is not None and rig.core.busy
    out = rig.core.handle(core.NotAccepted(leg.id, 488, "Not Acceptable Here"), rig.now)
    assert core.RejectCall("in-1", 488, "Not Acceptable Here") in out
    assert not rig.core.busy


def test_illegal_local_commands_raise_and_change_nothing() -> None:
    rig = Rig({A: Script()})
    before = len(rig.actions)
    with pytest.raises(LocalError, match="no call to hang up: the station is idle"):
        rig.feed(core.Hangup())
    with pytest.raises(LocalError, match="door action 'smash'; allowed: open, hold, lock"):
        rig.feed(core.DoorCommand("smash", "ctl"))
    assert len(rig.actions) == before
    with pytest.raises(TypeError, match="not a station input"):
        rig.core.handle("press", rig.now)  # type: ignore[arg-type]


def test_a_hang_up_calls_off_the_ringing_and_stops_the_ringback() -> None:
    rig = Rig({A: Script(), B: Script()}, call={"targets": [A, B], "strategy": "parallel"})
    rig.press()
    rig.advance(1)
    rig.feed(core.Hangup("hung up from the control socket"))
    rig.advance(0.1)
    assert len(rig.of(core.EndCall)) == 2
    assert rig.events("call_record")[0]["outcome"] == "stopped"
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(None)
    assert {e["reason"] for e in rig.events("call", state="cancelled")} == {
        "hung up from the control socket"}


def test_a_leg_called_off_before_its_invite_went_out_is_withdrawn_quietly() -> None:
    rig = Rig({A: Script()})
    out = rig.core.handle(core.Pressed("bell"), 0.0)
    place = next(a for a in out if isinstance(a, core.PlaceCall))
    out = rig.core.handle(core.Hangup(), 0.1)
    assert core.EndCall(place.leg) in out
    out = rig.core.handle(core.NotPlaced(place.leg, 0, "withdrawn"), 0.2)
    assert not [a for a in out if isinstance(a, core.Publish)]
    assert not rig.core.legs


def test_door_hold_lock_the_left_open_alarm_and_tamper() -> None:
    rig = Rig({A: Script()}, door={"hold_max_seconds": 100, "open_alarm_seconds": 30})
    rig.feed(core.DoorCommand("hold", "the control socket"))
    assert rig.relay() == [True] and rig.core.door.held
    rig.advance(99)
    rig.feed(core.DoorCommand("open", "the control socket"))    # a pulse does not end a hold
    assert rig.relay() == [True]
    rig.advance(1.1)
    assert rig.relay() == [True, False]                        # hold_max is over
    rig.feed(core.DoorContact(closed=False))
    rig.advance(29.9)
    assert not rig.events("alarm")
    rig.advance(0.2)
    assert rig.events("alarm", cause="door_open", active=True, detail="open for 30 s")
    assert rig.of(core.ShowLeds)[-1].shown.status == "error"
    rig.feed(core.DoorContact(closed=True))
    assert rig.events("alarm", cause="door_open", active=False)
    rig.feed(core.Tamper(opened=True))
    rig.feed(core.Tamper(opened=True))
    assert len(rig.events("alarm", cause="tamper", active=True)) == 1
    rig.feed(core.DoorCommand("hold", "ctl"))
    rig.feed(core.DoorCommand("lock", "ctl"))
    assert rig.relay()[-2:] == [True, False] and rig.events("door", action="locked")


def test_the_leds_follow_a_visit() -> None:
    rig = Rig({A: Script(answer=2)}, registrar=True, door={"pulse_seconds": 1})
    assert rig.of(core.ShowLeds)[-1].shown.status == "unregistered"
    rig.feed(core.Registration(RegState.REGISTERED, 200, "OK", "sip:pbx"))
    rig.press()
    rig.advance(0.01)
    rig.advance(3)
    rig.keys("1234#")
    rig.advance(1)
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    calls = [a.shown.call for a in rig.of(core.ShowLeds)]
    changes = [c for i, c in enumerate(calls) if i == 0 or calls[i - 1] != c]
    assert changes == ["none", "calling", "ringing", "in_call", "door_open", "in_call", "none"]
    statuses = [a.shown.status for a in rig.of(core.ShowLeds)]
    assert statuses[0] == "unregistered" and "idle" in statuses


def test_audio_is_reported_each_second_of_the_call_only() -> None:
    rig = Rig({A: Script(answer=1)})
    rig.press()
    rig.advance(1.05)
    rig.advance(10)
    assert len(rig.of(core.ReportAudio)) == 10
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    rig.advance(10)
    assert len(rig.of(core.ReportAudio)) == 10 and rig.core.next_deadline() is None


def test_an_hour_of_visits_each_ringing_out_once_then_up_to_the_maximum() -> None:
    rig = Rig({A: Script(), B: Script(answer=15)},
              call={"targets": [A, B], "ring_time": 20, "max_duration": 600,
                    "warning_seconds": 0, "press_holdoff": 0})
    for _ in range(5):
        rig.press()
        rig.advance(720)
    records = rig.events("call_record")
    assert [(r["outcome"], r["answered_by"], r["seconds"]) for r in records] == \
        [("answered", B, 600.0)] * 5
    assert len(rig.events("call", state="cancelled", peer=A)) == 5


def test_a_code_for_one_resident_opens_only_in_a_call_with_that_resident() -> None:
    rig = Rig({A: Script(answer=1), B: Script(answer=1)},
              call={"button_targets": {"bell2": [B]}, "press_holdoff": 0},
              door={"codes": [], "caller_codes": {B: ["4711#"]}})
    rig.press("bell")
    rig.advance(2)
    rig.keys("4711#")              # flat 2's code, in flat 1's call: no code opens there
    assert not rig.events("door") and rig.relay() == []
    rig.feed(core.Ended(rig.answer_call(), "BYE", by_remote=True))
    rig.press("bell2")
    rig.advance(2)
    rig.keys("4711#")
    assert rig.events("door", action="opened", caller=B) and rig.relay() == [True]


def test_without_any_code_digits_are_not_guesses() -> None:
    rig = Rig({A: Script(answer=1)}, door={"codes": [], "max_wrong_codes": 1})
    rig.press()
    rig.advance(2)
    rig.keys("1234#" * 4)
    assert len(rig.events("dtmf")) == 20
    assert not rig.events("door") and rig.relay() == [] and not rig.of(core.SaveLockouts)
