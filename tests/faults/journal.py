"""The fault suite's ledger: what the producer's journal (``produce.py``) and its database say must,
must not, and may arrive at each service, and the check of one service's applications against it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Ledger:
    """What the producer's journal and database say must, must not, and may arrive."""

    must: set[str] = field(default_factory=set)  # confirmed direct sends, committed outbox rows
    never: set[str] = field(default_factory=set)  # outbox transactions killed before commit
    maybe: set[str] = field(default_factory=set)  # direct sends refused with PublishError
    in_doubt: Counter[int] = field(default_factory=Counter)  # n -> direct sends cut off by a kill (unknown id)
    refused: int = 0  # direct sends refused with PublishError (each sent again)
    resent_same_id: int = 0  # direct sends cut off by a kill, sent again under the producer's own id
    confirmed_n: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, journal: Path, committed: set[str], own_ids: bool = False) -> Ledger:
        """``own_ids``: direct sends carried the producer's own id (``send_event(..., id=…)``), so a
        send cut off by a kill was sent again as the same event: nothing unknown may arrive."""
        ledger = cls()
        pending: list[Any] | None = None  # [n, how, id written inside the open transaction]

        def killed(n: int, how: str, open_id: str | None) -> None:
            if how == "direct" and own_ids:
                ledger.resent_same_id += 1
            elif how == "direct":
                ledger.in_doubt[n] += 1
            elif open_id is not None and open_id in committed:
                ledger.must.add(open_id)  # committed, the kill came before the journal line
                ledger.confirmed_n.add(n)
            elif open_id is not None:
                ledger.never.add(open_id)

        for line in journal.read_text().splitlines():
            step, n_text, rest = line.split()
            n = int(n_text)
            if step == "begin":
                if pending is not None:
                    killed(*pending)
                pending = [n, rest, None]
            elif step == "committed":
                pass  # the row is in the producer's database: ``killed`` reads it from there
            elif step == "unconfirmed":
                ledger.maybe.add(rest)
                ledger.refused += 1
            elif step == "open":
                assert pending is not None
                pending[2] = rest
            else:  # direct | outbox
                ledger.must.add(rest)
                ledger.confirmed_n.add(n)
                pending = None
        if pending is not None:
            killed(*pending)
        return ledger

    def check(self, service: str, applied: list[tuple[str, int]], want: set[str]) -> int:
        """Assert ``service``'s applications; returns how many in-doubt sends arrived."""
        counts = Counter(event_id for event_id, _ in applied)
        twice = sorted(i for i, c in counts.items() if c > 1)
        assert twice == [], f"{service} applied {len(twice)} events twice: {twice[:5]}"
        assert want - set(counts) == set(), f"{service} lost {len(want - set(counts))} events"
        arrived_never = self.never & set(counts)
        assert arrived_never == set(), f"{service} applied events whose transaction never committed: {arrived_never}"
        unknown = Counter(n for event_id, n in applied if event_id not in want and event_id not in self.maybe)
        over = {n: c for n, c in unknown.items() if c > self.in_doubt.get(n, 0)}
        assert over == {}, f"{service} applied events nobody sent (n -> count beyond the sends in doubt): {over}"
        return sum(unknown.values())
