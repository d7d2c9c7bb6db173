"""What one scorer (or the equivalence pair decider) did in a scoring run: the fields and the report line
both share, so that the score stage reports, totals and raises on either alike."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    name: str
    kind: str
    failed_permanent: int = 0     # stored with an error (e.g. 400, empty answer), never re-asked
    failed_transient: int = 0     # not stored: still failing after every attempt; the next run retries
    retries: int = 0
    cost: float = 0.0
    stopped: str | None = None    # why it stopped before the end
    stopped_for_cost: bool = False
    last_transient: str | None = None

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.failed_transient and not self.stopped_for_cost

    def line(self) -> str:
        return ", ".join(self.counts() + self.ending())

    def counts(self) -> list[str]:
        """The parts of the line that say what was done (each kind its own)."""
        return [f"{self.name} ({self.kind})"]

    def ending(self) -> list[str]:
        """The parts every kind ends its line with: what is still failing, cost, why it stopped."""
        parts = []
        if self.failed_transient:
            parts.append(f"{self.failed_transient} still failing (not stored; run again to retry): "
                         f"{self.last_transient}")
        parts += self.done()
        if self.cost:
            parts.append(f"cost ${self.cost:.4f}")
        if self.stopped:
            parts.append(f"STOPPED: {self.stopped}")
        if self.stopped_for_cost:
            parts.append("stopped at max_cost (every result so far is kept); raise max_cost to go on")
        return parts

    def done(self) -> list[str]:
        """What an earlier run had already done (before the cost)."""
        return []
