import numpy as np
import numpy.typing as npt

class LevelMeter:
    window: int
    dbfs: float
    peak_dbfs: float
    frames: int
    def __init__(self, window: int) -> None: ...
    def add(self, frame: npt.NDArray[np.int16]) -> None: ...
