"""Rows in the service's own database: what the fabric keeps beside the service's data.

Duplicate marks (``idempotency``: one row per applied event and handler, written in the handler's
transaction), dead letters (``deadletters``), the transactional outbox and its claims
(``outbox``; ``sent`` marks its published rows sent in batches), pruning all of these (``retention``), and which database alias holds which
service's rows for the tools that look across services (``databases``). The models are
``event_tasks.models``; nothing here talks to a broker on its own but ``outbox`` (through
``brokers.fanout``).

May import: core, brokers.
"""
