from tests.faults.ledger import AppliedBase


class Applied(AppliedBase):
    """One row per application of an event by service f3 (two rows = applied twice)."""
