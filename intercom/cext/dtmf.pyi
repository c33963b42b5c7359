"""Type stubs for the Cython module intercom.cext.dtmf (cext/dtmf.pyx)."""
import numpy as np
import numpy.typing as npt

KEYS: tuple[str, ...]

class DtmfDetector:
    rate: int
    block: int
    def __init__(self, rate: int, min_dbfs: float = ...) -> None: ...
    def feed(self, pcm: npt.NDArray[np.int16]) -> list[str]: ...
