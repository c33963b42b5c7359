"""``intercom``: the command's entry point.

A simple ``intercom ctl`` (press, door, hangup, input; with ``--socket`` or the
default socket) goes the short way, intercom.ctl: a Unix socket and one line,
without argparse, asyncio or the config, so that a script or another button
daemon reaches the station in milliseconds. Everything else is parsed and run
by intercom.commands.

numpy's BLAS would start a worker thread per core at import (three on a
Pi 3 or 4, each with its own buffers); a door station does no linear algebra
worth a thread, so it gets one, unless the environment says otherwise.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["ctl"]:
        from intercom.ctl import quick
        done = quick(args[1:])
        if done is not None:
            return done
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before numpy is loaded
    from intercom.commands import main as full
    return full(args)


if __name__ == "__main__":
    raise SystemExit(main())
