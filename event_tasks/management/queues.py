"""``manage.py events queues migrate --service S --to quorum|classic`` (``ops.migrate_queues``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..conf import settings
from ..handlers import consuming_services, service_handlers
from ..ops.migrate_queues import migrate

if TYPE_CHECKING:
    from celery import Celery

MIGRATE_HELP = "move a service's queue to another type (classic, quorum) without losing an event"
MIGRATE_DESCRIPTION = """\
Move events.<service> to another queue type on RabbitMQ (a queue's type and arguments cannot change
in place; its name stays). The procedure (docs/migrating-queues.md):

  1. stop the service's workers (producers may go on sending: nothing is lost meanwhile);
  2. manage.py events queues migrate --service S --to quorum    (or --to classic)
  3. set EVENT_TASKS_QUEUE_TYPE to the new type in the service's settings (and deploy it);
  4. start the service's workers.

The command refuses to start while the queue has consumers. It binds a temporary queue
events.<service>.migrating of the new type like the service queue, unbinds the service queue, moves
its messages over (each confirmed by the broker before the original is acked), deletes it, declares
it again with the new type, its arguments and bindings (a quorum queue's parked queue and retry
delay levels too), unbinds the temporary queue, moves its messages back and deletes it. One of the
two queues is bound at every instant; copies an event got in both while both were bound are dropped
from the move. Interrupted, it can be run again: it goes on from where the broker stands (--to the
old type rolls back). The subscriptions come from the management API's bindings, else from the
service's handlers (run it in the service's project, EVENT_TASKS_SERVICE=<service>)."""


def run(app: Celery, action: str, service: str, target: str, out: Callable[[str], object]) -> None:
    """``events queues <action>``: ``migrate`` only."""
    assert action == "migrate"  # argparse allows no other
    subscriptions = service_handlers(service).patterns if service in consuming_services() else []
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        migrate(conn, service, target, subscriptions, out)
    if settings().queue_type != target:
        out(
            f"now set EVENT_TASKS_QUEUE_TYPE = {target!r} in {service}'s settings, then start its workers "
            f"(this process has {settings().queue_type!r}: its workers and `events declare` would refuse the queue)"
        )
    else:
        out(f"EVENT_TASKS_QUEUE_TYPE is {target!r} here: start {service}'s workers")
