"""The consume path, in the order a message takes it.

``worker`` wires a Celery worker whose ``-Q`` names ``events.<service>``: it registers one event
task per consumed type and adds the ``intake`` step. ``intake`` consumes the event queue on a
channel of its own, refuses what is not a readable event (dead letters), gives each copy its task
id and hands the message to Celery; ``unknown_types`` holds back events no handler here knows yet
(a deploy in progress); ``batching`` gathers batched types into one delivery. ``dispatch`` is the
event task: it runs the delivery decision of ``delivery`` (handlers, duplicate marks, retry with
backoff, dead letter) and acts on it;
``lost`` sends back deliveries whose pool process died or ran past its time limit; ``refusals``
stores what the intake cannot read as dead letters.

May import: core, brokers, store, send.
"""
