"""Fault-suite services f1, f2, f3: each applies probe events to a ledger in its own database.

* the ledger row (``Applied``) is written in the handler's transaction, so a duplicate
  application would show as two rows for one event id;
* about 30% of events fail once, transiently, *after* writing (the write must roll back);
* the key ``exit:<service>`` makes that service's handler kill its worker process (poison).
"""
