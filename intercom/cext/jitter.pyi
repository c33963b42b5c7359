NORMAL: int
ACCELERATE: int
STRETCH: int
CONCEAL: int
WAIT: int
SILENCE: int
OPERATIONS: tuple[str, ...]

class JitterBuffer:
    count: int
    clock_rate: int
    step: int
    playing: bool
    play_ts: int
    min_delay_ms: float
    max_delay_ms: float
    target_ms: float
    base_ms: float
    spike_ms: float
    spike_max_ms: float
    filtered_ms: float
    received: int
    played: int
    late: int
    duplicates: int
    discarded: int
    concealed: int
    replaced: int
    fec_recovered: int
    accelerated: int
    stretched: int
    underruns: int
    ssrc_changes: int
    timestamp_jumps: int
    realigned: int
    spikes: int
    delay_sum_ms: float
    def __init__(self, clock_rate: int, step: int, min_delay_ms: float = ...,
                 max_delay_ms: float = ..., quantile: float = ..., forget: float = ...,
                 spike_max_ms: float = ...) -> None: ...
    def put(self, seq: int, ts: int, ssrc: int, payload: object, now_ms: float) -> bool: ...
    def event_span(self, ts: int, ssrc: int, duration: int) -> None: ...
    def get(self, now_ms: float) -> tuple[int, bytes | None]: ...
    def level_ms(self) -> float: ...
    def delay_ms(self, now_ms: float) -> float: ...
    def adjusted(self, ms: float) -> None: ...
    def fec_unused(self) -> None: ...
    def mean_delay_ms(self) -> float: ...
