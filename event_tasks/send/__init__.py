"""The send path: ``send_event`` / ``send_events`` and the outbox relay.

``publisher`` validates an event against the catalog, builds its envelope and message, and
publishes it through the broker's fan-out (or, inside ``transaction.atomic()``, writes an outbox
row that is published after the commit); ``relay`` publishes the outbox rows a crash left behind.

May import: core, brokers, store.
"""
