"""Announcements, visitors' messages and recorded calls, through the station's
core on a virtual clock (the rig of test_station_core plays the phones)."""
from __future__ import annotations

import numpy as np
from test_station_core import A, Rig, Script

from intercom.app import core
from intercom.media.sounds import Clip, Sequence
from intercom.media.tones import BUSY, CALL_RECORDED, DOOR_OPENED, RINGBACK, WRONG_CODE


def clip(name: str) -> Clip:
    return Clip(name, f"{name}.wav", np.ones(800, np.int16), 8000)


SOUNDS = {name: clip(name) for name in ("ringing", "nobody_answered", "leave_message",
                                        "door_opened", "locked_out", "call_recorded")}
MESSAGES = {"messages": True, "message_seconds": 20, "message_silence_seconds": 4}


def test_announcements_take_the_place_of_the_tones() -> None:
    rig = Rig({A: Script(answer=2)}, sounds=SOUNDS, door={"codes": ["1234#"],
                                                           "max_wrong_codes": 2})
    rig.press()
    ringing = rig.of(core.LocalSound)[0].sound
    assert ringing == Sequence("ringing, ringback", (SOUNDS["ringing"], RINGBACK["us"]))
    rig.advance(3)
    rig.keys("1#")
    first = rig.of(core.CallSound)[-1]
    assert (first.sound, first.to_speaker) == (WRONG_CODE, False)      # no lockout yet
    rig.keys("2#")
    locked = rig.of(core.CallSound)[-1]
    assert (locked.sound, locked.to_speaker) == (SOUNDS["locked_out"], False)


def test_the_door_opened_announcement_plays_to_both_even_with_tones_off() -> None:
    rig = Rig({A: Script(answer=2)}, sounds={"door_opened": SOUNDS["door_opened"]},
              audio={"tones": False})
    rig.press()
    assert not rig.of(core.LocalSound)                 # no ringback: tones are off
    rig.advance(3)
    rig.keys("1234#")
    played = rig.of(core.CallSound)
    assert [(p.sound, p.to_speaker) for p in played] == [(SOUNDS["door_opened"], True)]
    plain = Rig({A: Script(answer=2)})
    plain.press()
    plain.advance(3)
    plain.keys("1234#")
    assert plain.of(core.CallSound)[-1].sound == DOOR_OPENED


def test_nobody_answered_is_announced_in_place_of_the_busy_tone() -> None:
    rig = Rig({A: Script()}, sounds={"nobody_answered": SOUNDS["nobody_answered"]},
              call={"ring_timeout": 30})
    rig.press()
    rig.advance(31)
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(SOUNDS["nobody_answered"])
    plain = Rig({A: Script()}, call={"ring_timeout": 30})
    plain.press()
    plain.advance(31)
    assert plain.of(core.LocalSound)[-1] == core.LocalSound(BUSY["us"], core.BUSY_SECONDS)


def test_a_visitor_leaves_a_message_when_nobody_answers() -> None:
    rig = Rig({A: Script()}, sounds=SOUNDS, call={"ring_timeout": 30}, recordings=MESSAGES)
    rig.press()
    rig.advance(31)
    record = rig.of(core.RecordMessage)[0]
    assert record == core.RecordMessage(
        "bell", Sequence("nobody_answered, leave_message",
                         (SOUNDS["nobody_answered"], SOUNDS["leave_message"])), 20, 4.0)
    assert rig.events("call_record")[0]["outcome"] == "no answer"
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(None)       # no busy tone
    # The visitor presses again to finish: the message ends with its tone, and no
    # new visit starts until the card is free.
    rig.press()
    assert rig.of(core.EndMessage) == [core.EndMessage(at_once=False)]
    assert len(rig.of(core.PlaceCall)) == 1
    rig.feed(core.MessageOver())
    rig.press()
    assert len(rig.of(core.PlaceCall)) == 2


def test_a_message_without_announcements_gives_way_to_a_call_and_to_hangup() -> None:
    rig = Rig({A: Script()}, call={"ring_timeout": 30}, recordings=MESSAGES)
    rig.press()
    rig.advance(31)
    assert rig.of(core.RecordMessage)[0].prompt is None               # the beep alone
    rig.feed(core.Offered("in-1", A, ("10.0.0.1", 5060), True, b"v=0"))
    actions = [a for a in rig.actions if isinstance(a, core.EndMessage | core.AcceptCall)]
    assert isinstance(actions[0], core.EndMessage) and actions[0].at_once
    assert isinstance(actions[1], core.AcceptCall)                    # the card is free first
    rig.feed(core.MessageOver())
    again = Rig({A: Script()}, call={"ring_timeout": 30}, recordings=MESSAGES)
    again.press()
    again.advance(31)
    again.feed(core.Hangup("by ctl"))
    assert again.of(core.EndMessage) == [core.EndMessage(at_once=True)]


def test_a_recorded_call_is_announced_to_both_sides_first() -> None:
    rig = Rig({A: Script(answer=2)}, audio={"tones": False}, recordings={"calls": True})
    rig.press()
    rig.advance(3)
    leg = rig.answer_call()
    told = rig.of(core.CallSound)[0]
    assert told == core.CallSound(leg, CALL_RECORDED, True)          # whatever tones says
    index = rig.actions.index(told)
    assert rig.actions[index + 1] == core.RecordCall(leg, "bell")
    own = Rig({A: Script(answer=2)}, sounds=SOUNDS, recordings={"calls": True})
    own.press()
    own.advance(3)
    assert own.of(core.CallSound)[0].sound == SOUNDS["call_recorded"]
    off = Rig({A: Script(answer=2)})
    off.press()
    off.advance(3)
    assert not off.of(core.RecordCall)


def test_a_door_opened_from_the_app_is_heard_at_the_door() -> None:
    rig = Rig({A: Script(answer=2)}, sounds={"door_opened": SOUNDS["door_opened"]})
    rig.feed(core.DoorCommand("open", "HTTP anna"))
    assert rig.of(core.LocalSound)[-1] == core.LocalSound(SOUNDS["door_opened"])
    rig.advance(5)
    rig.press()
    rig.advance(3)
    rig.feed(core.DoorCommand("open", "HTTP anna"))               # in the call: both hear it
    assert rig.of(core.CallSound)[-1] == core.CallSound(rig.answer_call(),
                                                        SOUNDS["door_opened"], True)
    plain = Rig({A: Script()})
    plain.feed(core.DoorCommand("open", "ctl"))
    assert plain.of(core.LocalSound)[-1] == core.LocalSound(DOOR_OPENED)
    plain.press()
    sounds = len(plain.of(core.LocalSound))
    plain.feed(core.DoorCommand("open", "ctl"))                   # ringing: the ringback stays
    assert len(plain.of(core.LocalSound)) == sounds
