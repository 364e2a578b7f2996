"""Local development and the demo: everything on this machine, DEBUG on."""

from .base import *  # noqa: F403
from .base import DATABASES, EVENT_TASKS_SERVICE, VAR_DIR, _db_url, _default_db, database, env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)

if not EVENT_TASKS_SERVICE and _db_url == _default_db:
    # The demo's tooling process (`events status`, `events metrics`) also reads each service's
    # SQLite file under var/ (what <SERVICE>_DATABASE_URL says elsewhere).
    for _file in sorted(VAR_DIR.glob("*.sqlite3")):
        if _file.stem != "tooling" and _file.stem not in DATABASES:
            DATABASES[_file.stem] = database(f"sqlite:///{_file}")
