"""Pausing a long job on SIGINT (Ctrl-C) or SIGTERM (`kill`, a container stop) instead of dying mid-batch.

    with stop_on_signals(job.request_stop):
        report = job.run()
    if report.paused:
        raise typer.Exit(EXIT_PAUSED)

The first signal asks the job to stop after what it has in flight (written and checkpointed); a second
SIGINT gives up waiting and interrupts at once (KeyboardInterrupt: the checkpoint is still consistent, as
after `kill -9`). The previous handlers are put back when the block ends.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_PAUSED", "stop_on_signals"]

EXIT_PAUSED = 130  # 128 + SIGINT, as shells report a job stopped by Ctrl-C; whatever the signal was


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call `stop` on the first SIGINT or SIGTERM inside the block (see the module docstring)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        print(
            f"nirbridge: {name}: stopping after the batches in flight are written and checkpointed "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
