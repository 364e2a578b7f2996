"""zeta's handler (imported into zeta's handlers module). Keys, besides those of tests.fabric.services:
``unfixable:zeta:x`` raises :class:`Unfixable`, which the handler does not retry."""

from event_tasks import Event, consumer
from tests.fabric.schemas.probe import PROBE_UPDATED
from tests.fabric.services import record


class Unfixable(Exception):
    """A failure no retry can fix."""


@consumer(PROBE_UPDATED, name="zeta.audit", max_retries=1, dont_retry=[Unfixable], time_limit=20)
def audit_probe(event: Event) -> None:
    if (event.key or "").startswith("unfixable:zeta"):
        record("zeta", event)
        raise Unfixable("this payload can never be audited")
    record("zeta", event)
