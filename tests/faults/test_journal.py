"""The fault suite's ledger on hand-written journals (no broker): each kind of kill is accounted
for, and each way of getting it wrong (lost, applied twice, an uncommitted event arriving, an
event nobody sent) fails the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.journal import Ledger

JOURNAL = """\
begin 0 direct
direct 0 d0
begin 1 direct
unconfirmed 1 u1
direct 1 d1
begin 2 outbox
open 2 never2
begin 2 outbox
open 2 o2
outbox 2 o2
begin 3 direct
begin 3 direct
direct 3 d3
begin 4 direct
direct 4 d4
begin 5 outbox
open 5 held5
committed 5 held5
begin 5 outbox
open 5 o5
outbox 5 o5
begin 6 outbox
begin 6 outbox
open 6 o6
outbox 6 o6
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    journal = tmp_path / "journal.txt"
    journal.write_text(JOURNAL)
    return Ledger.read(journal, committed={"o2", "held5", "o5", "o6"})


def test_the_journal_says_what_must_never_and_may_arrive(ledger: Ledger) -> None:
    assert ledger.must == {"d0", "d1", "o2", "d3", "d4", "held5", "o5", "o6"}
    assert ledger.never == {"never2"}  # killed inside its transaction
    assert ledger.maybe == {"u1"}  # refused, resent as d1
    assert dict(ledger.in_doubt) == {3: 1}  # killed mid direct send: its id is unknown
    assert ledger.confirmed_n == set(range(7))


def test_a_complete_run_passes_and_counts_the_in_doubt_send_that_arrived(ledger: Ledger) -> None:
    applied = [(i, int(i[-1])) for i in ledger.must] + [("u1", 1), ("unknown-3", 3)]
    assert ledger.check("f1", applied, ledger.must) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: [x for x in a if x[0] != "held5"], "lost 1"),
        (lambda a: a + [("d4", 4)], "applied 1 events twice"),
        (lambda a: a + [("never2", 2)], "never committed"),
        (lambda a: a + [("unknown-5", 5)], "nobody sent"),  # outbox n: no unknown id may arrive
        (lambda a: a + [("unknown-3", 3), ("other-3", 3)], "nobody sent"),  # one in-doubt send, two arrivals
    ],
)
def test_every_way_of_getting_it_wrong_fails(ledger: Ledger, change, message: str) -> None:
    applied = change([(i, int(i[-1])) for i in ledger.must])
    with pytest.raises(AssertionError, match=message):
        ledger.check("f1", applied, ledger.must)


def test_with_the_producers_own_ids_nothing_unknown_may_arrive(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.write_text(JOURNAL)
    ledger = Ledger.read(journal, committed={"o2", "held5", "o5", "o6"}, own_ids=True)
    assert ledger.in_doubt == {} and ledger.resent_same_id == 1
    with pytest.raises(AssertionError, match="nobody sent"):
        ledger.check("f1", [(i, int(i[-1])) for i in ledger.must] + [("unknown-3", 3)], ledger.must)
