"""SDP (RFC 4566) and offer/answer (RFC 3264) for a door station's call.

What a door station needs: the first audio stream (static and dynamic
payload types with rtpmap/fmtp, the connection address, the direction,
rtcp-mux, SDES crypto) and the first video stream (H.264 in packetization
mode 1 with RTCP feedback, RFC 6184 8.2 and RFC 4585 4.2). An answer has
as many m= lines as its offer, in the same order; a stream we do not take
is answered with port 0 (RFC 3264 6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from intercom.sip.errors import RemoteError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC_RTPMAP: dict[int, tuple[str, int, int]] = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1),
                                                  9: ("G722", 8000, 1)}


class SdpError(RemoteError):
    """An SDP body we cannot use: answered 488 Not Acceptable Here."""

    def __init__(self, reason: str) -> None:
        super().__init__(488, reason)


@dataclass(frozen=True)
class PayloadFormat:
    payload_type: int
    name: str               # as in rtpmap, e.g. "PCMU", "telephone-event"
    clock_rate: int
    fmtp: str = ""
    channels: int = 1       # the rtpmap's encoding parameters (opus/48000/2, RFC 7587)


@dataclass
class MediaDescription:
    address: str
    port: int
    formats: list[PayloadFormat] = field(default_factory=list)
    direction: str = "sendrecv"
    ptime: int | None = None
    session_id: str = "0"        # from the o= line; kept across offers (RFC 3264 8)
    version: int = 0
    rtcp_mux: bool = False       # RTCP on the RTP port (RFC 5761)
    protocol: str = "RTP/AVP"    # RTP/SAVP when SRTP is required
    crypto: list[str] = field(default_factory=list)   # a=crypto values (RFC 4568)
    kind: str = "audio"          # the m= line's media: audio, video, application...
    rtcp_fb: list[str] = field(default_factory=list)  # a=rtcp-fb values (RFC 4585 4.2)
    tokens: list[str] = field(default_factory=list)   # the m= line's formats, as written

    @property
    def on_hold(self) -> bool:
        """The sender asks us not to send: sendonly, inactive or c=0.0.0.0 (RFC 3264 8.4)."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")

    def find(self, name: str) -> PayloadFormat | None:
        return next((f for f in self.formats if f.name.lower() == name.lower()), None)


def parse_streams(body: bytes) -> list[MediaDescription]:
    """Every m= line of an SDP body, in order. Raises SdpError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    session_addr = ""
    session_direction = "sendrecv"
    streams: list[MediaDescription] = []
    directions: list[str | None] = []
    payload_types: list[list[int]] = []
    rtpmaps: list[dict[int, tuple[str, int, int]]] = []
    fmtps: list[dict[int, str]] = []
    origin = ("0", 0)
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        media = streams[-1] if streams else None
        if kind == "o":
            parts = value.split()
            if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
                raise SdpError(f"bad o= line {line!r}")
            origin = (parts[1], int(parts[2]))
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError(f"bad m= line {line!r}")
            rtp = parts[0] in ("audio", "video")
            if rtp and not all(p.isdigit() for p in parts[3:]):
                raise SdpError(f"bad m= line {line!r}")
            streams.append(MediaDescription(session_addr, int(parts[1].split("/")[0]),
                                            protocol=parts[2], kind=parts[0],
                                            tokens=parts[3:]))
            directions.append(None)
            payload_types.append([int(p) for p in parts[3:]] if rtp else [])
            rtpmaps.append({})
            fmtps.append({})
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError(f"bad c= line {line!r}")
            address = parts[2].split("/")[0]
            if media is None:
                session_addr = address
            else:
                media.address = address
        elif kind == "a":
            name, _, rest = value.partition(":")
            if name in DIRECTIONS:
                if media is None:
                    session_direction = name
                else:
                    directions[-1] = name
            elif media is None:
                continue
            elif name == "rtpmap":
                pt_text, _, enc = rest.partition(" ")
                codec, _, rate = enc.partition("/")
                clock_text, _, channel_text = rate.partition("/")
                if pt_text.isdigit() and clock_text.isdigit():
                    rtpmaps[-1][int(pt_text)] = (codec, int(clock_text),
                                                 int(channel_text) if channel_text.isdigit() else 1)
            elif name == "fmtp":
                pt_text, _, params = rest.partition(" ")
                if pt_text.isdigit():
                    fmtps[-1][int(pt_text)] = params.strip()
            elif name == "ptime" and rest.strip().isdigit():
                media.ptime = int(rest.strip())
            elif name == "rtcp-mux":
                media.rtcp_mux = True
            elif name == "crypto":
                media.crypto.append(rest.strip())
            elif name == "rtcp-fb":
                media.rtcp_fb.append(" ".join(rest.split()))
    for i, media in enumerate(streams):
        media.direction = directions[i] or session_direction
        media.session_id, media.version = origin
        for pt in payload_types[i]:
            encoding, clock, channels = rtpmaps[i].get(pt) or STATIC_RTPMAP.get(pt, ("", 0, 1))
            if encoding:
                media.formats.append(PayloadFormat(pt, encoding, clock, fmtps[i].get(pt, ""),
                                                   channels))
    return streams


def parse(body: bytes) -> MediaDescription:
    """The first audio stream of an SDP body. Raises SdpError."""
    media = next((m for m in parse_streams(body) if m.kind == "audio"), None)
    if media is None:
        raise SdpError("no audio stream in SDP")
    if not media.address:
        raise SdpError("no connection address for the audio stream")
    return media


def video_of(streams: list[MediaDescription]) -> MediaDescription | None:
    """The first video stream that is not turned down (port 0), if any."""
    return next((m for m in streams if m.kind == "video" and m.port), None)


def _media_lines(media: MediaDescription, session_address: str) -> list[str]:
    lines = [f"m={media.kind} {media.port} {media.protocol} "
             + " ".join([str(f.payload_type) for f in media.formats] or media.tokens)]
    if media.port == 0:                  # turned down: the m= line says it all (RFC 3264 6)
        return lines
    if media.address != session_address:
        lines.append(f"c=IN {'IP6' if ':' in media.address else 'IP4'} {media.address}")
    for f in media.formats:
        channels = f"/{f.channels}" if f.channels > 1 else ""
        lines.append(f"a=rtpmap:{f.payload_type} {f.name}/{f.clock_rate}{channels}")
        if f.fmtp:
            lines.append(f"a=fmtp:{f.payload_type} {f.fmtp}")
    lines += [f"a=rtcp-fb:{fb}" for fb in media.rtcp_fb]
    if media.ptime:
        lines.append(f"a=ptime:{media.ptime}")
    if media.rtcp_mux:
        lines.append("a=rtcp-mux")
    lines += [f"a=crypto:{c}" for c in media.crypto]
    lines.append(f"a={media.direction}")
    return lines


def build(session_id: int | str, version: int, address: str, media: MediaDescription,
          *more: MediaDescription) -> bytes:
    """An SDP body with ``media`` and ``more`` as its m= lines, in that order."""
    family = "IP6" if ":" in address else "IP4"
    media_family = "IP6" if ":" in media.address else "IP4"
    lines = ["v=0", f"o=- {session_id} {version} IN {family} {address}", "s=intercom",
             f"c=IN {media_family} {media.address}", "t=0 0"]
    for m in (media, *more):
        lines += _media_lines(m, media.address)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True)
class Negotiated:
    """The result of offer/answer: what to send and where."""

    remote_address: str
    remote_port: int
    codec: PayloadFormat
    telephone_event: PayloadFormat | None
    direction: str
    rtcp_mux: bool = False


def negotiate(local: MediaDescription, remote: MediaDescription,
              we_offered: bool) -> Negotiated:
    """Pick the codec: the answerer's preference order wins (RFC 3264 section 6.1)."""
    answer, offer = (remote, local) if we_offered else (local, remote)
    for f in answer.formats:
        if f.name.lower() == "telephone-event":
            continue
        if offer.find(f.name) is not None and local.find(f.name) is not None:
            codec = remote.find(f.name)
            assert codec is not None
            # Events on the codec's clock if the peer has them (RFC 4733 2.1), else any.
            event = next((e for e in remote.formats if e.name.lower() == "telephone-event"
                          and e.clock_rate == codec.clock_rate), remote.find("telephone-event"))
            return Negotiated(remote.address, remote.port, codec, event, remote.direction,
                              local.rtcp_mux and remote.rtcp_mux)
    raise SdpError("no common audio codec")


def answer_for(offer: MediaDescription, supported: list[PayloadFormat], address: str,
               port: int, ptime: int, protocols: tuple[str, ...] = ("RTP/AVP",)
               ) -> MediaDescription:
    """Our answer to ``offer``: the offer's codecs we support, in the offerer's order.

    Crypto lines are the caller's business (SDES needs our own key).
    """
    if offer.protocol not in protocols:
        raise SdpError(f"media protocol {offer.protocol} is not supported")
    formats: list[PayloadFormat] = []
    for f in offer.formats:
        ours = next((s for s in supported if s.name.lower() == f.name.lower()
                     and s.clock_rate == f.clock_rate), None)
        if ours is not None:
            formats.append(PayloadFormat(f.payload_type, ours.name, ours.clock_rate, ours.fmtp,
                                         ours.channels))
    if not any(f.name.lower() != "telephone-event" for f in formats):
        raise SdpError("no common audio codec")
    # We take RTCP on the RTP port whenever offered (RFC 5761 5.1.1).
    return MediaDescription(address, port, formats, _mirror(offer.direction), ptime,
                            rtcp_mux=offer.rtcp_mux, protocol=offer.protocol)


def _mirror(direction: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


def answer_direction(offered: str, holding: bool) -> str:
    """Our direction in an answer to ``offered``, when we hold the call or not (RFC 6337 5.3)."""
    mirrored = _mirror(offered)
    if not holding:
        return mirrored
    return {"sendrecv": "sendonly", "recvonly": "sendonly"}.get(mirrored, "inactive")


def hold_direction(remote: str, holding: bool) -> str:
    """The direction to offer: sendonly to hold, or inactive if the peer holds us too."""
    if holding:       # "do not send to me", and send only if the peer still listens
        return "sendonly" if remote in ("sendrecv", "recvonly") else "inactive"
    return "sendrecv"


# H.264 as the station sends it: packetization mode 1, constrained baseline level 3.1
# (RFC 6184 8.1), keyframes on a PLI or FIR (RFC 4585 6.3.1, RFC 5104 4.3.1).
H264_FMTP = "packetization-mode=1;profile-level-id=42e01f"
VIDEO_PT = 96
VIDEO_PROTOCOLS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")


def video_offer(address: str, port: int) -> MediaDescription:
    """Our video stream in an offer: H.264 we send, nothing we show (no screen)."""
    return MediaDescription(address, port, [PayloadFormat(VIDEO_PT, "H264", 90000, H264_FMTP)],
                            "sendonly", rtcp_mux=True, kind="video",
                            rtcp_fb=[f"{VIDEO_PT} nack pli", f"{VIDEO_PT} ccm fir"])


def packetization_mode(fmtp: str) -> int:
    """The fmtp's packetization-mode; 0 when it says none (RFC 6184 8.1)."""
    for item in fmtp.split(";"):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "packetization-mode" and value.strip().isdigit():
            return int(value)
    return 0


def h264_mode1(media: MediaDescription) -> PayloadFormat | None:
    """The stream's first H.264 format in packetization mode 1, the one we send."""
    return next((f for f in media.formats if f.name.lower() == "h264" and f.clock_rate == 90000
                 and packetization_mode(f.fmtp) == 1), None)


def video_direction(offered: str) -> str:
    """Our video direction in an answer: we only send (RFC 3264 6.1)."""
    return "sendonly" if offered in ("sendrecv", "recvonly") else "inactive"


def answer_video(offer: MediaDescription, ours: MediaDescription) -> MediaDescription | None:
    """Our answer to a video stream: its H.264 mode 1 payload type, or None (turned down)."""
    theirs = h264_mode1(offer)
    if theirs is None or offer.protocol not in VIDEO_PROTOCOLS or ours.port == 0:
        return None
    pt = theirs.payload_type
    return MediaDescription(ours.address, ours.port,
                            [PayloadFormat(pt, "H264", 90000, H264_FMTP)],
                            video_direction(offer.direction), rtcp_mux=offer.rtcp_mux,
                            protocol=offer.protocol, kind="video",
                            rtcp_fb=[f"{pt} nack pli", f"{pt} ccm fir"])


def turned_down(offer: MediaDescription) -> MediaDescription:
    """A stream of the offer answered with port 0 (RFC 3264 6)."""
    return MediaDescription(offer.address, 0, [], offer.direction, protocol=offer.protocol,
                            kind=offer.kind,
                            tokens=[str(f.payload_type) for f in offer.formats] or offer.tokens
                            or ["0"])


def answer_streams(offered: list[MediaDescription], audio: MediaDescription,
                   video: MediaDescription | None) -> list[MediaDescription]:
    """The answer's m= lines for ``offered``, in its order: ``audio`` for its first
    audio stream, ``video`` (when not None) for its first video stream, port 0 for
    every other (RFC 3264 6)."""
    out: list[MediaDescription] = []
    audio_done = video_done = False
    for m in offered:
        if m.kind == "audio" and not audio_done:
            out.append(audio)
            audio_done = True
        elif m.kind == "video" and m.port and video is not None and not video_done:
            out.append(video)
            video_done = True
        else:
            out.append(turned_down(m))
    return out


def rebuild(local: bytes, direction: str, offer: bytes | None = None) -> bytes:
    """Our SDP again with a new audio direction (an answer to ``offer`` when given).

    The o= version goes up only when the session changes (RFC 3264 section 8).
    """
    streams = parse_streams(local)
    ours = parse(local)
    formats = ours.formats
    offered = parse_streams(offer) if offer is not None else None
    if offer is not None:
        formats = answer_for(parse(offer), ours.formats, ours.address, ours.port,
                             ours.ptime or 20, (ours.protocol,)).formats
    mux = ours.rtcp_mux and (offer is None or parse(offer).rtcp_mux)
    new = MediaDescription(ours.address, ours.port, formats, direction, ours.ptime,
                           rtcp_mux=mux, protocol=ours.protocol, crypto=ours.crypto)
    video = video_of(streams)
    if offered is None:
        out = [new if m.kind == "audio" and m.port == ours.port else m for m in streams]
    else:
        theirs = video_of(offered)
        answer = answer_video(theirs, video) if theirs is not None and video is not None \
            else None
        out = answer_streams(offered, new, answer)
    origin_addr = next((ln.split()[-1] for ln in local.decode().splitlines()
                        if ln.startswith("o=")), ours.address)
    same = build(ours.session_id, ours.version, origin_addr, *out)
    if same == local:
        return local
    return build(ours.session_id, ours.version + 1, origin_addr, *out)


def readdress(local: bytes, address: str, port: int | None = None) -> bytes:
    """Our SDP at a new address (and audio port), after a network change: a new version."""
    streams = parse_streams(local)
    ours = parse(local)
    out = []
    for m in streams:
        if m.port:
            m.address = address
            if m.kind == "audio" and m.port == ours.port:
                m.port = port or ours.port
        out.append(m)
    return build(ours.session_id, ours.version + 1, address, *out)
