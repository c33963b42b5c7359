"""SDP with more than one stream (RFC 3264): the answer has the offer's m= lines in its
order, video we take is H.264 mode 1 sendonly with RTCP feedback, the rest port 0."""
from __future__ import annotations

from intercom.sip import sdp

AUDIO = [sdp.PayloadFormat(0, "PCMU", 8000), sdp.PayloadFormat(101, "telephone-event", 8000)]


def phone_offer(video_first: bool = False) -> bytes:
    audio = ("m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
             "a=sendrecv\r\n")
    video = ("m=video 6002 RTP/AVP 100 96\r\nb=AS:2000\r\n"
             "a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=0\r\n"
             "a=rtpmap:96 H264/90000\r\n"
             "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
             "a=rtcp-fb:* nack pli\r\na=sendrecv\r\n")
    body = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    body += (video + audio) if video_first else (audio + video)
    body += "m=application 5060 UDP/BFCP *\r\n"
    return body.encode()


def test_streams_are_read_in_order_with_their_own_attributes() -> None:
    streams = sdp.parse_streams(phone_offer())
    assert [(m.kind, m.port) for m in streams] == [("audio", 6000), ("video", 6002),
                                                   ("application", 5060)]
    video = streams[1]
    assert sdp.h264_mode1(video) == sdp.PayloadFormat(
        96, "H264", 90000, "packetization-mode=1;profile-level-id=42e01f")
    assert video.rtcp_fb == ["* nack pli"] and streams[2].tokens == ["*"]
    assert sdp.parse(phone_offer(video_first=True)).port == 6000    # the audio, wherever


def test_the_answer_mirrors_the_offer_line_for_line() -> None:
    for video_first in (False, True):
        offer = sdp.parse_streams(phone_offer(video_first))
        audio = sdp.answer_for(sdp.parse(phone_offer(video_first)), AUDIO, "10.0.0.1", 4000, 20)
        video = sdp.answer_video(sdp.video_of(offer), sdp.video_offer("10.0.0.1", 4002))  # type: ignore[arg-type]
        assert video is not None and video.direction == "sendonly"
        answer = sdp.parse_streams(sdp.build(5, 1, "10.0.0.1",
                                             *sdp.answer_streams(offer, audio, video)))
        assert [m.kind for m in answer] == [m.kind for m in offer]
        by_kind = {m.kind: m for m in answer}
        assert by_kind["audio"].port == 4000 and by_kind["application"].port == 0
        v = by_kind["video"]
        assert v.port == 4002 and [f.payload_type for f in v.formats] == [96]
        assert v.rtcp_fb == ["96 nack pli", "96 ccm fir"] and v.direction == "sendonly"
        # Without a camera the video is turned down, keeping its place (RFC 3264 6).
        plain = sdp.parse_streams(sdp.build(5, 1, "10.0.0.1",
                                            *sdp.answer_streams(offer, audio, None)))
        assert [(m.kind, m.port) for m in plain] == [(m.kind, 0 if m.kind != "audio"
                                                      else 4000) for m in offer]


def test_video_we_cannot_send_is_turned_down_or_inactive() -> None:
    ours = sdp.video_offer("10.0.0.1", 4002)
    mode0 = sdp.parse_streams(phone_offer().replace(b"packetization-mode=1", b"x=1"))[1]
    assert sdp.answer_video(mode0, ours) is None
    sendonly = sdp.parse_streams(phone_offer().replace(b"a=sendrecv\r\nm=app",
                                                       b"a=sendonly\r\nm=app"))[1]
    answer = sdp.answer_video(sendonly, ours)
    assert answer is not None and answer.direction == "inactive"


def test_rebuild_and_readdress_keep_the_video() -> None:
    local = sdp.build(7, 1, "10.0.0.1", sdp.MediaDescription("10.0.0.1", 4000, list(AUDIO)),
                      sdp.video_offer("10.0.0.1", 4002))
    held = sdp.parse_streams(sdp.rebuild(local, "sendonly"))
    assert [(m.kind, m.port, m.direction) for m in held] == [("audio", 4000, "sendonly"),
                                                             ("video", 4002, "sendonly")]
    answer = sdp.parse_streams(sdp.rebuild(local, "sendrecv", phone_offer()))
    assert [(m.kind, m.port) for m in answer] == [("audio", 4000), ("video", 4002),
                                                  ("application", 0)]
    moved = sdp.parse_streams(sdp.readdress(local, "10.0.0.9", 5000))
    assert [(m.address, m.port) for m in moved] == [("10.0.0.9", 5000), ("10.0.0.9", 4002)]
