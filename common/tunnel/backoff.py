"""Reconnect delays: exponential with full jitter, capped; pure, with the randomness passed in.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads the
reconnects of many agents after a relay restart, so they do not arrive as one storm.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    draw: Callable[[float, float], float] = field(default=random.uniform)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return self.draw(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
