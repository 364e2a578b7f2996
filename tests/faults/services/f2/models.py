from tests.faults.ledger import AppliedBase


class Applied(AppliedBase):
    """One row per application of an event by service f2 (two rows = applied twice)."""
