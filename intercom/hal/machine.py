"""What the station runs on: a Raspberry Pi (a GPIO header and a sound card to
drive) or anything else (a desktop, CI, a virtual machine), by the model the
firmware's device tree names. ``[board] type = "auto"`` and ``[audio] device =
"auto"`` are settled by it when the config is read."""
from __future__ import annotations

# /sys first: the service's ProcSubset=pid hides /proc/device-tree.
MODEL_FILES = ("/sys/firmware/devicetree/base/model", "/proc/device-tree/model")


def model() -> str:
    """The device tree's model ("Raspberry Pi 4 Model B Rev 1.4"), or "" where
    there is none (a PC)."""
    for path in MODEL_FILES:
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\0\n").decode("utf-8", "replace")
        except OSError:
            continue
    return ""


def is_raspberry_pi() -> bool:
    return model().startswith("Raspberry Pi")


def auto_board() -> str:
    """What ``[board] type = "auto"`` means here."""
    return "gpio" if is_raspberry_pi() else "simulated"


def auto_audio() -> str:
    """What ``[audio] device = "auto"`` means here."""
    return "alsa" if is_raspberry_pi() else "simulated"


def describe() -> str:
    """For the log: what auto settles on, and why."""
    name = model()
    if is_raspberry_pi():
        return f"{name}: GPIO and the ALSA sound card"
    return f"{name or 'no device tree model'}: not a Raspberry Pi, so the simulated board and card"
