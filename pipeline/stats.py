"""What one unit of a stage counts. Every stage's pure row function takes it last, the same way, and
the job shell writes it to the unit's stats file (jobs/common.py merges those into _stats.json)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class UnitStats:
    nodes: Counter = field(default_factory=Counter)     # parts of kept documents dropped, by reason
    tally: Counter = field(default_factory=Counter)     # stage totals: paragraphs_in, images_out …
    warnings: Counter = field(default_factory=Counter)  # what went wrong without costing a document
    dropped: Counter = field(default_factory=Counter)   # documents dropped, by reason category
    docs_in: int = 0

    def to_dict(self, docs_out: int) -> dict:
        return {"docs": {"in": self.docs_in, "out": docs_out, "dropped": dict(sorted(self.dropped.items()))},
                "nodes": {"dropped": dict(sorted(self.nodes.items()))},
                "warnings": dict(sorted(self.warnings.items())), "tally": dict(sorted(self.tally.items()))}
