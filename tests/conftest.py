import pytest
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.services import api_key_create


@pytest.fixture(autouse=True)
def celery_tasks_run_in_process(request):
    """Tasks the code under test sends (on commit: invoice emails and PDFs) run at once in the
    test's process and raise what they raise, as a worker would run them; no broker is needed.
    Tests marked `worker` send through a real broker to a real worker process instead."""
    if request.node.get_closest_marker("worker"):
        yield
        return
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager = conf.task_eager_propagates = True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def api_key(db) -> str:
    return api_key_create(name="test client")[1]


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client
