"""Redis: the fan-out script, the crash-safe consume step, and reading a queue item.

``fanout`` pushes an event's copies with one script call (``fanout.lua``); ``transport`` is the
kombu transport of the worker's event channel (an atomic move into an in-flight list, swept back
after a crash: ``take.lua``, ``sweep.lua``); ``items`` decodes what a queue holds (kombu's JSON,
the base64 body, the envelope) for the operator tools.
"""
