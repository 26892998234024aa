"""The delays between polls: short for a command's first moments, then growing."""

from __future__ import annotations

import asyncio
import time


class PollDelay:
    """Poll delays: ``FIRST_POLL`` (0.05 s) for the first ``FAST_POLLING`` seconds, then
    x1.25 up to ``ceiling``. On the lab an asynchronous command finishes within a second
    or two, on a real CMS in seconds to minutes: a short first phase keeps the delay
    between a command finishing and the executor noticing small, the back-off keeps a
    long command from being polled 20 times a second."""

    FIRST_POLL = 0.05
    FAST_POLLING = 1.5
    FACTOR = 1.25

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.delay = min(self.FIRST_POLL, ceiling)
        self.fast_until = time.monotonic() + self.FAST_POLLING

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.advance()

    def advance(self) -> None:
        if time.monotonic() >= self.fast_until:
            self.delay = min(self.delay * self.FACTOR, self.ceiling)
