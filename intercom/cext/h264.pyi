"""Type stubs for the Cython module intercom.cext.h264 (cext/h264.pyx)."""

STAP_A: int
FU_A: int
IDR: int
START: bytes

def nal_units(au: bytes) -> list[bytes]: ...
def packetize(au: bytes, mtu: int = ...) -> list[bytes]: ...

class Depacketizer:
    invalid: int
    lost: int
    damaged: bool
    units: int
    def __init__(self) -> None: ...
    def feed(self, payload: bytes, seq: int, marker: bool) -> bytes | None: ...
