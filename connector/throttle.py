"""How fast the enrichment job writes: a docs/s ceiling that gives way to a cluster's pushback (AIMD).

    rate = AdaptiveRate(ceiling=200.0)          # --max-docs-per-s; None: no ceiling until a 429
    for batch in batches:
        write(batch)                            # 429s seen while writing it: `pushback`
        time.sleep(rate.after_batch(len(batch), pushback))

The rule is TCP's additive increase, multiplicative decrease:
- a batch whose writes were answered 429 (one or many: one burst) multiplies the rate by `decrease` (0.5),
  down to `floor`; without a ceiling, the first cut starts from the rate the job was reaching then;
- a batch written without pushback adds `increase` × the reference rate (the ceiling, or the rate at the
  first cut): after a halving, about 10 clean batches (at 0.05) win back half of what was lost. The rate never
  passes the ceiling; without one, reaching the reference again lifts the limit entirely.
Pacing is per batch, not averaged over the run: a batch of n documents takes at least n / rate seconds from
the end of the previous one, so slow stretches build no credit for a burst later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["AdaptiveRate"]


class AdaptiveRate:
    """An AIMD ceiling on documents per second; `after_batch` says how long to wait (see the module)."""

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        decrease: float = 0.5,
        increase: float = 0.05,
        floor: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling is not None and not ceiling > 0:
            raise ValueError(f"ceiling must be positive documents per second, got {ceiling!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1 (exclusive), got {decrease!r}")
        if not 0 < increase <= 1:
            raise ValueError(f"increase must be in (0, 1], got {increase!r}")
        if not floor > 0:
            raise ValueError(f"floor must be positive, got {floor!r}")
        self.ceiling = ceiling
        self.decrease = decrease
        self.increase = increase
        self.floor = min(floor, ceiling) if ceiling is not None else floor
        self.rate: float | None = ceiling  # None: unlimited
        self.reference: float | None = ceiling
        self.cuts = 0  # multiplicative decreases so far
        self._clock = clock
        self._last = clock()

    def restart_clock(self) -> None:
        """Start pacing from now (the first batch is measured from here, not from construction)."""
        self._last = self._clock()

    def after_batch(self, docs: int, pushback: bool) -> float:
        """Adjust the rate for one written batch of `docs` documents; the seconds to wait before the next."""
        now = self._clock()
        took = max(now - self._last, 1e-6)
        if pushback:
            base = self.rate if self.rate is not None else max(docs / took, self.floor)
            if self.reference is None:
                self.reference = base
            self.rate = max(self.floor, base * self.decrease)
            self.cuts += 1
        elif self.rate is not None and self.reference is not None:
            self.rate += self.increase * self.reference
            if self.ceiling is not None:
                self.rate = min(self.rate, self.ceiling)
            elif self.rate >= self.reference:
                self.rate = None  # recovered: no ceiling was asked for
        wait = max(0.0, docs / self.rate - took) if self.rate is not None and docs else 0.0
        self._last = now + wait
        return wait
