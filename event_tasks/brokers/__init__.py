"""The wire: what an event is on a broker, and how its copies get there.

The Celery task message of an event (``message``), the fabric's queues and bindings on the
exchange ``events`` (``topology``), putting one event's copies on the broker (``fanout``, with
the Redis way in ``redis/`` and the RabbitMQ way in ``rabbitmq/``), the crash-safe Redis consume
step (``redis.transport``), the RabbitMQ management API (``rabbitmq.api``) and the start-up broker
checks (``check``). Bytes and broker objects only: no database, no handler runs here.

May import: core.
"""
