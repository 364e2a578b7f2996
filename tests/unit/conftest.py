import pytest

from event_tasks import catalog


@pytest.fixture(autouse=True, scope="session")
def probe_catalog():
    """The fabric's probe types, beside the real catalog."""
    catalog.load("tests.fabric.schemas")
