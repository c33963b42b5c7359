"""Type stubs for the Cython module intercom.cext.g722 (cext/g722.pyx)."""
import numpy as np
import numpy.typing as npt

BITRATE: int

class G722Encoder:
    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes: ...

class G722Decoder:
    def decode(self, data: bytes) -> npt.NDArray[np.int16]: ...
