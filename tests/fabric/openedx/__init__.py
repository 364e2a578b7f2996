"""An Open edX service that switched to event-tasks by settings (``settings.py``), for
tests/integration/test_openedx.py: real openedx-events signals, receivers in ``receivers``, and
``data`` for the signals the tests send. Used as ``EVENT_TASKS_CONSUMERS_PACKAGE`` so that no demo
consumer app is installed."""
