"""Probe event types for the fabric's own tests (EVENT_TASKS_SCHEMAS_PACKAGE=tests.fabric.schemas).

Producer: the test process. Consumers: the probe services in tests/fabric/services.
"""

from marshmallow import fields, validate

from event_tasks.catalog import EventSchema, event_type


class ProbeSchema(EventSchema):
    n = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    note = fields.String(load_default="")


PROBE_CREATED = event_type(
    "org.openedx.learning.probe.created.v1",
    schema=ProbeSchema,
    owner="prober",
    description="A probe was created (fabric tests).",
)
PROBE_UPDATED = event_type(
    "org.openedx.learning.probe.updated.v1",
    schema=ProbeSchema,
    owner="prober",
    description="A probe was updated (fabric tests).",
)
CATALOG_PROBE = event_type(
    "org.openedx.catalog.probe.changed.v1",
    schema=ProbeSchema,
    owner="prober",
    description="A catalog probe changed (fabric tests).",
)
