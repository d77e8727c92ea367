"""Client-side rate limits (requests/min, tokens/min) and a shared pause for Retry-After."""
from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """A bucket refilled continuously at `per_minute / 60` units per second.

    `capacity` defaults to one second's worth of refill (at least 1 unit), so bursts stay
    short. A request larger than the capacity waits until the bucket is full and then
    drives it negative, which keeps the long-run rate right.
    """

    def __init__(self, per_minute: float, capacity: float | None = None):
        if per_minute <= 0:
            raise ValueError(f"rate must be > 0 per minute, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = capacity if capacity is not None else max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: float = 1.0) -> None:
        """Wait until `amount` units are available and take them."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                need = min(amount, self.capacity)
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)


class RateLimiter:
    """Requests/min and tokens/min limits plus a global "not before" time set by 429s."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self.not_before = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a server's Retry-After)."""
        self.not_before = max(self.not_before, time.monotonic() + max(0.0, seconds))

    async def acquire(self, tokens: int) -> None:
        """Wait for any pause, then for request and token budget."""
        delay = self.not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.requests is not None:
            await self.requests.take(1.0)
        if self.tokens is not None:
            await self.tokens.take(float(tokens))
