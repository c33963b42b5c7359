"""Audio codecs declared as data: name, clock rate, payload type, the two halves."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from intercom.cext import g711
from intercom.sip.sdp import PayloadFormat

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Codec:
    name: str
    clock_rate: int
    payload_type: int                 # static type, or our choice for dynamic ones
    encode: Callable[[Pcm], bytes]
    decode: Callable[[bytes], Pcm]

    @property
    def format(self) -> PayloadFormat:
        return PayloadFormat(self.payload_type, self.name, self.clock_rate)


CODECS: dict[str, Codec] = {
    "PCMU": Codec("PCMU", 8000, 0, g711.ulaw_encode, g711.ulaw_decode),
    "PCMA": Codec("PCMA", 8000, 8, g711.alaw_encode, g711.alaw_decode),
}
# RFC 4733 events 0-15 (digits, *, #, A-D) and 16 (flash), on a dynamic type.
TELEPHONE_EVENT = PayloadFormat(101, "telephone-event", 8000, "0-16")


def offer_formats(names: list[str]) -> list[PayloadFormat]:
    """Our payload formats in preference order, plus telephone-event."""
    return [CODECS[n].format for n in names] + [TELEPHONE_EVENT]


def codec_for(fmt: PayloadFormat) -> Codec:
    codec = CODECS[fmt.name.upper()]
    return Codec(codec.name, codec.clock_rate, fmt.payload_type, codec.encode, codec.decode)
