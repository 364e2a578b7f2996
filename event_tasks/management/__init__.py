"""Django management commands: ``manage.py events ...`` (``commands/events.py``).

A face of the package: it parses what a person typed and calls the layers below.

May import: core, brokers, store, send, consume, ops.
"""
