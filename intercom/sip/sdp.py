"""SDP (RFC 4566) for one audio stream, and offer/answer (RFC 3264).

Only what a door station needs: one m=audio line, static and dynamic
payload types with rtpmap/fmtp, the connection address and the direction.
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

    @property
    def on_hold(self) -> bool:
        """The sender asks us not to send: sendonly, inactive or c=0.0.0.0 (RFC 3264 8.4)."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")

    def find(self, name: str) -> PayloadFormat | None:
        return next((f for f in self.formats if f.name.lower() == name.lower()), None)


def parse(body: bytes) -> MediaDescription:
    """The first audio stream of an SDP body. Raises SdpError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    session_addr = ""
    media: MediaDescription | None = None
    payload_types: list[int] = []
    rtpmap: dict[int, tuple[str, int, int]] = {}
    fmtp: dict[int, str] = {}
    direction = "sendrecv"
    in_audio = False
    origin = ("0", 0)
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "o":
            parts = value.split()
            if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
                raise SdpError(f"bad o= line {line!r}")
            origin = (parts[1], int(parts[2]))
        elif kind == "m":
            if media is not None:
                break                       # only the first audio stream is used
            parts = value.split()
            in_audio = len(parts) >= 4 and parts[0] == "audio"
            if not in_audio:
                continue
            if not parts[1].isdigit() or not all(p.isdigit() for p in parts[3:]):
                raise SdpError(f"bad m= line {line!r}")
            media = MediaDescription(session_addr, int(parts[1]), protocol=parts[2])
            payload_types = [int(p) for p in parts[3:]]
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError(f"bad c= line {line!r}")
            address = parts[2].split("/")[0]
            if media is None:
                session_addr = address
            elif in_audio:
                media.address = address
        elif kind == "a" and (media is None or in_audio):
            name, _, rest = value.partition(":")
            if name in DIRECTIONS:
                direction = name
            elif name == "rtpmap" and media is not None:
                pt_text, _, enc = rest.partition(" ")
                codec, _, rate = enc.partition("/")
                clock_text, _, channel_text = rate.partition("/")
                if pt_text.isdigit() and clock_text.isdigit():
                    rtpmap[int(pt_text)] = (codec, int(clock_text),
                                            int(channel_text) if channel_text.isdigit() else 1)
            elif name == "fmtp" and media is not None:
                pt_text, _, params = rest.partition(" ")
                if pt_text.isdigit():
                    fmtp[int(pt_text)] = params.strip()
            elif name == "ptime" and media is not None and rest.strip().isdigit():
                media.ptime = int(rest.strip())
            elif name == "rtcp-mux" and media is not None:
                media.rtcp_mux = True
            elif name == "crypto" and media is not None:
                media.crypto.append(rest.strip())
    if media is None:
        raise SdpError("no audio stream in SDP")
    if not media.address:
        raise SdpError("no connection address for the audio stream")
    media.direction = direction
    media.session_id, media.version = origin
    for pt in payload_types:
        encoding, clock, channels = rtpmap.get(pt) or STATIC_RTPMAP.get(pt, ("", 0, 1))
        if encoding:
            media.formats.append(PayloadFormat(pt, encoding, clock, fmtp.get(pt, ""), channels))
    return media


def build(session_id: int | str, version: int, address: str, media: MediaDescription) -> bytes:
    family = "IP6" if ":" in address else "IP4"
    media_family = "IP6" if ":" in media.address else "IP4"
    lines = ["v=0", f"o=- {session_id} {version} IN {family} {address}", "s=intercom",
             f"c=IN {media_family} {media.address}", "t=0 0",
             f"m=audio {media.port} {media.protocol} "
             + " ".join(str(f.payload_type) for f in media.formats)]
    for f in media.formats:
        channels = f"/{f.channels}" if f.channels > 1 else ""
        lines.append(f"a=rtpmap:{f.payload_type} {f.name}/{f.clock_rate}{channels}")
        if f.fmtp:
            lines.append(f"a=fmtp:{f.payload_type} {f.fmtp}")
    if media.ptime:
        lines.append(f"a=ptime:{media.ptime}")
    if media.rtcp_mux:
        lines.append("a=rtcp-mux")
    lines += [f"a=crypto:{c}" for c in media.crypto]
    lines.append(f"a={media.direction}")
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


def rebuild(local: bytes, direction: str, offer: bytes | None = None) -> bytes:
    """Our SDP again with a new direction (an answer to ``offer`` when given).

    The o= version goes up only when the session changes (RFC 3264 section 8).
    """
    ours = parse(local)
    formats = ours.formats
    if offer is not None:
        formats = answer_for(parse(offer), ours.formats, ours.address, ours.port,
                             ours.ptime or 20, (ours.protocol,)).formats
    mux = ours.rtcp_mux and (offer is None or parse(offer).rtcp_mux)
    new = MediaDescription(ours.address, ours.port, formats, direction, ours.ptime,
                           rtcp_mux=mux, protocol=ours.protocol, crypto=ours.crypto)
    origin_addr = next((ln.split()[-1] for ln in local.decode().splitlines()
                        if ln.startswith("o=")), ours.address)
    same = build(ours.session_id, ours.version, origin_addr, new)
    if same == local:
        return local
    return build(ours.session_id, ours.version + 1, origin_addr, new)


def readdress(local: bytes, address: str, port: int | None = None) -> bytes:
    """Our SDP at a new address (and port), after a network change: a new version."""
    ours = parse(local)
    new = MediaDescription(address, port or ours.port, ours.formats, ours.direction, ours.ptime,
                           rtcp_mux=ours.rtcp_mux, protocol=ours.protocol, crypto=ours.crypto)
    return build(ours.session_id, ours.version + 1, address, new)
