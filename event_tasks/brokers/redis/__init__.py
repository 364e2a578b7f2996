"""Redis: the fan-out script, the crash-safe consume step, and reading a queue item.

``fanout`` pushes an event's copies with one script call (``fanout.lua``), and with
``EVENT_TASKS_REDIS_WAIT_REPLICAS`` waits for the replicas (``WAIT``); ``clients`` builds the
fabric's own redis-py clients from a Redis URL or a Sentinel list (``sentinel://…;…`` and
``master_name``); ``transport`` is the kombu transport of the worker's event channel (an atomic
move into an in-flight list, swept back after a crash: ``take.lua``, ``sweep.lua``; its QoS
with acks held for the next take, ``qos``, and its poller, ``poller``), and
``sentinel`` the same on kombu's Sentinel transport; ``items`` decodes what a queue holds
(kombu's JSON, the base64 body, the envelope) for the operator tools.
"""
