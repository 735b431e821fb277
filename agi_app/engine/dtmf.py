"""The per-call DTMF buffer: digits pressed at any time, kept across prompts (type-ahead).

Bounded, so a flood of digits cannot grow memory; overflow drops the newest digits and is
counted, because the oldest ones are what the caller meant first. After secure input, what the
caller typed beyond it is discarded until they pause (`discard_until_quiet`): digits typed past a
PIN are more PIN, not the next menu's choice — for a bounded time, so a flood is never silence.
"""

from __future__ import annotations

import asyncio
from collections import deque

VALID_DIGITS = frozenset("0123456789*#ABCD")


class DtmfBuffer:
    def __init__(self, capacity: int = 32) -> None:
        self._digits: deque[str] = deque()
        self._capacity = capacity
        self._arrived = asyncio.Event()
        self.dropped = 0

    def push(self, digit: str) -> bool:
        """Add a digit; returns False if it was refused (invalid or buffer full)."""
        if digit not in VALID_DIGITS or len(self._digits) >= self._capacity:
            self.dropped += 1
            return False
        self._digits.append(digit)
        self._arrived.set()
        return True

    def __len__(self) -> int:
        return len(self._digits)

    def clear(self) -> None:
        self._digits.clear()
        self._arrived.clear()

    def pop_nowait(self) -> str | None:
        if not self._digits:
            return None
        digit = self._digits.popleft()
        if not self._digits:
            self._arrived.clear()
        return digit

    async def wait_any(self) -> None:
        """Return as soon as at least one digit is buffered."""
        while not self._digits:
            self._arrived.clear()
            await self._arrived.wait()

    async def pop(self, timeout: float) -> str | None:
        """Next digit, waiting up to `timeout` seconds; None on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self.wait_any()
        except TimeoutError:
            return None
        return self.pop_nowait()

    async def discard_until_quiet(self, gap: float, *, at_most: float) -> tuple[int, bool]:
        """Drop buffered digits and any arriving until none has arrived for `gap` seconds, or for
        `at_most` seconds in all: keys that never stop (a flood, a backlog Asterisk still delivers)
        must not hold the call in silence. Returns how many were dropped (never which) and whether
        the caller paused (False: given up after `at_most`; later keys are the next prompt's)."""
        deadline = asyncio.get_running_loop().time() + at_most
        discarded = 0
        while True:
            discarded += len(self._digits)
            self.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return discarded, False
            try:
                async with asyncio.timeout(min(gap, left)):
                    await self.wait_any()
            except TimeoutError:
                if left > gap:
                    return discarded, True
