"""The catalog of openedx-events types: ``EVENT_TASKS_SCHEMAS_PACKAGE = "event_tasks.openedx.catalog"``.

Every signal openedx-events 10.5 can serialize is an event type here, under its own name, with the
schema ``event_tasks.openedx.schema`` generates from its data classes, the signal's
``event_description`` as description and its ``event_trigger_repository`` as owner. It covers the
same names as this repository's demo catalog (``schemas``) where both define an event, so a service
uses one or the other, not both (the catalog refuses a type defined twice).
"""
