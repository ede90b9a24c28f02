"""When a failed send is tried again: exponential backoff with jitter, as the original.

The original redelivers after 20 s, then three times longer each time, at most an hour apart;
a remote's ``Retry-After`` is honoured when it asks for longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 20.0
    multiplier: float = 3.0
    maximum: float = 3600.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(attempt - 1, 0))
        spread = base * self.jitter
        delay = base + random.uniform(-spread, spread)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return max(delay, 0.0)

    def next_attempt(
        self, now: datetime, attempt: int, retry_after: float | None = None
    ) -> datetime:
        return now + timedelta(seconds=self.delay(attempt, retry_after))
