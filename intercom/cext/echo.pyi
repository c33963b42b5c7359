"""Type stubs for the Cython module intercom.cext.echo (cext/echo.pyx)."""
import numpy as np
import numpy.typing as npt

from intercom.cext.resample import SpeexError as SpeexError

class EchoCanceller:
    frame_size: int
    filter_length: int
    rate: int
    def __init__(self, frame_size: int, filter_length: int, rate: int) -> None: ...
    def process(self, mic: npt.NDArray[np.int16],
                played: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]: ...
    def reset(self) -> None: ...

class Preprocessor:
    frame_size: int
    def __init__(self, frame_size: int, rate: int) -> None: ...
    def configure(self, denoise: bool = ..., noise_suppress_db: int = ..., agc: bool = ...,
                  agc_level: float = ..., agc_max_gain_db: int = ...,
                  echo_suppress_db: int = ..., echo_suppress_active_db: int = ...) -> None: ...
    def use_echo_state(self, canceller: EchoCanceller) -> None: ...
    def process(self, frame: npt.NDArray[np.int16]) -> bool: ...

class MicPath:
    device_rate: int
    rate: int
    frame: int
    lag: int
    def __init__(self, device_rate: int, rate: int, frame: int, mic_gain: float = ...,
                 canceller: EchoCanceller | None = ..., preprocessor: Preprocessor | None = ...,
                 lag: int = ..., quality: int = ...) -> None: ...
    def process(self, mic: npt.NDArray[np.int16],
                played: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]: ...
