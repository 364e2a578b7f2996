"""A no-op receiver of openedx-events' CERTIFICATE_CREATED (bench/openedx_backend.py), counted with
``bench.services.count`` (``BENCH_DONE_AT`` / ``BENCH_DONE_FILE``)."""
