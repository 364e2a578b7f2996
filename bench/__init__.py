"""Benchmarks of event-tasks against plain Celery, plain kombu and the Open edX Redis event bus.

``python -m bench`` (``make bench``) runs them all and writes ``bench/RESULTS.md`` and
``bench/results.jsonl``; see ``bench/README.md``. Never part of ``make test``.
"""
