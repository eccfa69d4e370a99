"""Per-step counts of the clean stage: how many documents entered each step, were kept, were
dropped (by reason) or skipped it, and the seconds spent in it. Mergeable across batches, units
and workers, and stored as plain JSON in the progress files and the manifest."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.clean.filters import FILTERS

# The order documents go through; `size` is checked by the parent, the rest in the workers: the
# steps before the quality filters, the filters (`FILTERS`, in their order), then PII redaction.
BEFORE_FILTERS = ("size", "decode", "extract", "normalize", "language")
AFTER_FILTERS = ("pii",)


def funnel_steps(filters: tuple[type, ...] = FILTERS) -> tuple[str, ...]:
    return (*BEFORE_FILTERS, *(f.name for f in filters), *AFTER_FILTERS)


STEPS = funnel_steps()
FIELDS = ("in", "kept", "dropped", "skipped")


class Funnel:
    """Counters per step; `to_json()` lists the steps in `steps` order (unknown ones last)."""

    def __init__(self, steps: tuple[str, ...] = STEPS) -> None:
        self.steps = steps
        self.counts: dict[str, Counter[str]] = {}
        self.reasons: dict[str, Counter[str]] = {}
        self.seconds: Counter[str] = Counter()

    def _step(self, step: str) -> Counter[str]:
        self.reasons.setdefault(step, Counter())
        return self.counts.setdefault(step, Counter())

    def kept(self, step: str) -> None:
        self._step(step).update(("in", "kept"))

    def dropped(self, step: str, reason: str) -> None:
        self._step(step).update(("in", "dropped"))
        self.reasons[step][reason] += 1

    def skipped(self, step: str) -> None:
        self._step(step)["skipped"] += 1

    def timed(self, step: str, seconds: float) -> None:
        self._step(step)
        self.seconds[step] += seconds

    def merge(self, data: dict[str, Any]) -> None:
        """Add the counts of another funnel's `to_json()`."""
        for step, row in data.items():
            counts = self._step(step)
            counts.update({k: row.get(k, 0) for k in FIELDS})
            self.reasons[step].update(row.get("reasons", {}))
            self.seconds[step] += row.get("seconds", 0.0)

    def to_json(self) -> dict[str, Any]:
        order = [s for s in self.steps if s in self.counts]
        order += sorted(set(self.counts) - set(self.steps))
        return {
            step: {k: self.counts[step].get(k, 0) for k in FIELDS}
            | {
                "reasons": dict(sorted(self.reasons[step].items())),
                "seconds": round(self.seconds[step], 4),
            }
            for step in order
        }


def merge_funnels(funnels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sum of several funnels as a list of rows in step order (the manifest's form: JSON
    objects are written with sorted keys, a list keeps the order)."""
    total = Funnel()
    for f in funnels:
        total.merge(f)
    return [{"step": step} | row for step, row in total.to_json().items()]
