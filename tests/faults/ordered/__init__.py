"""The ordered-consumption fault test's service (``tests/faults/test_ordered.py``).

``o1`` consumes the probe created and updated types with ``@consumer(..., ordered=True)`` and
writes one ledger row per application, in the handler's transaction, with the event's key and
its number within that key; ~30% of events fail once, transiently, after writing (the write
rolls back). The row ids then say in which order each key's events were applied.
"""
