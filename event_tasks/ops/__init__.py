"""What operators run: reports, replays and checks over the brokers and the services' databases.

``status`` (queues, workers, dead letters, outbox), ``trace`` (where one event went), ``tail``
(watch events go by), ``replay`` (dead letters back to their service), ``metrics`` (the
Prometheus exporter), ``exports`` (JSON Schemas and AsyncAPI of the catalog), ``topology_check``
(bindings against the handlers) and ``schema_check`` (the catalog against its last release). The
``events`` management command and the admin are their faces.

May import: core, brokers, store, send, consume.
"""
