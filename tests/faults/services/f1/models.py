from tests.faults.ledger import AppliedBase


class Applied(AppliedBase):
    """One row per application of an event by service f1 (two rows = applied twice)."""
