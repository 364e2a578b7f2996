"""RabbitMQ: the fan-out through the topic exchange with confirms, and the management API.

``fanout`` publishes once to ``events`` and lets the broker route; ``api`` reads queues and
bindings through the management plugin's HTTP API (pruning, ``topology verify``, ``status``).
"""
