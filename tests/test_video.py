"""H.264 for video in calls: the simulated camera through the encoder, RTP
payloads (RFC 6184 mode 1) and the decoder, its frame numbers read back from
the decoded pictures; keyframes with their parameter sets at the start and
whenever the peer asks."""
from __future__ import annotations

import pytest

from intercom.cext.h264 import START, Depacketizer, nal_units, packetize
from intercom.hal.camera import SimulatedCamera, read_counter

pytest.importorskip("av")
from intercom.media.video import (H264Decoder, H264Encoder, ParameterSets,  # noqa: E402
                                  VideoError, open_encoder)


def kinds(au: bytes) -> list[int]:
    return [n[0] & 0x1F for n in nal_units(au)]


def test_camera_frames_cross_rtp_and_decode_in_order_with_keyframes_on_request() -> None:
    camera = SimulatedCamera(320, 240)
    encoder = H264Encoder(320, 240, fps=15, keyframe_seconds=10)
    decoder = H264Decoder()
    receiver = Depacketizer()
    seq, numbers, units = 0, [], []
    for i in range(30):
        if i == 20:
            encoder.keyframe()                        # the peer sent a PLI
        for au in encoder.encode(camera.frame()):
            units.append(au)
            payloads = packetize(au, 1200)
            assert all(len(p) <= 1200 for p in payloads)
            for j, payload in enumerate(payloads):
                whole = receiver.feed(payload, seq, j == len(payloads) - 1)
                seq += 1
                if whole is not None:
                    assert nal_units(whole) == nal_units(au)     # start codes made 4 bytes
                    numbers += [read_counter(p) for p in decoder.decode(whole)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 28
    first = kinds(units[0])                              # SPS, PPS, then the IDR picture
    assert first[:2] == [7, 8] and first[-1] == 5
    sps = nal_units(units[0])[0]
    assert sps[1] == 66 and sps[2] & 0x40                # constrained baseline
    keyed = [i for i, au in enumerate(units) if 5 in kinds(au)]
    assert keyed[0] == 0 and len(keyed) == 2 and 19 <= keyed[1] <= 21
    assert kinds(units[keyed[1]])[:2] == [7, 8]          # parameter sets before each IDR
    assert kinds(units[keyed[1]])[-1] == 5
    assert all(5 not in kinds(au) for i, au in enumerate(units) if i not in keyed)
    assert encoder.keyframes == 2 and receiver.invalid == 0 and receiver.lost == 0


def test_the_video_codecs_refuse_what_they_cannot_take() -> None:
    with pytest.raises(VideoError, match="even sides"):
        H264Encoder(321, 240)
    encoder = H264Encoder(320, 240)
    with pytest.raises(VideoError, match="a 160x120 frame"):
        encoder.encode(SimulatedCamera(160, 120).frame())
    decoder = H264Decoder()
    try:
        pictures = decoder.decode(b"\x00\x00\x00\x01\x65" + bytes(40))
    except VideoError:
        pictures = []
    assert pictures == []                                # garbage: no picture, no crash


def test_every_idr_gets_its_parameter_sets_whatever_the_encoder_does() -> None:
    """An encoder that sends the SPS and PPS only once (as hardware encoders may):
    ParameterSets puts them back before each later IDR, and a decoder that joins
    at that IDR shows the picture."""
    camera = SimulatedCamera(320, 240)
    encoder = H264Encoder(320, 240, keyframe_seconds=10)
    units = []
    for i in range(12):
        if i == 8:
            encoder.keyframe()
        units += encoder.encode(camera.frame())
    keyed = [i for i, au in enumerate(units) if 5 in kinds(au)]
    assert len(keyed) == 2
    bare = [b"".join(START + n for n in nal_units(au) if n[0] & 0x1F not in (7, 8))
            if i == keyed[1] else au for i, au in enumerate(units)]
    assert kinds(bare[keyed[1]]) == [5]                  # what such an encoder gives
    sets = ParameterSets()
    fixed = [sets.complete(au) for au in bare]
    assert sets.added == 1
    assert nal_units(fixed[keyed[1]]) == nal_units(units[keyed[1]])
    assert fixed[:keyed[1]] == units[:keyed[1]] and fixed[keyed[1] + 1:] == units[keyed[1] + 1:]
    joined = H264Decoder()                               # a phone that joins at the 2nd IDR
    numbers = [read_counter(p) for au in fixed[keyed[1]:] for p in joined.decode(au)]
    assert numbers and numbers[0] == keyed[1] + 1
    late = H264Decoder()
    assert [p for au in bare[keyed[1]:keyed[1] + 1] for p in _decoded(late, au)] == []


def _decoded(decoder: H264Decoder, au: bytes) -> list[object]:
    try:
        return list(decoder.decode(au))
    except VideoError:
        return []


def test_the_encoder_is_chosen_as_configured() -> None:
    # This machine has no V4L2 M2M encoder: hardware says so, auto takes x264.
    with pytest.raises(VideoError, match="h264_v4l2m2m does not open.*/dev/video11"):
        open_encoder("hardware", 320, 240, 15, 600_000, 4)
    assert open_encoder("auto", 320, 240, 15, 600_000, 4).codec == "libx264"
    assert open_encoder("software", 320, 240, 15, 600_000, 4).codec == "libx264"
    with pytest.raises(VideoError, match="not auto, hardware or software"):
        open_encoder("gpu", 320, 240, 15, 600_000, 4)
