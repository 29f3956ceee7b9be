"""Concurrent senders of the same events: each event is stored once, and the answers add up.

PostgreSQL only (SQLite serializes writers, so there is no race to prove). Two threads, each with
its own database connection, POST at the same moment (a barrier releases them together) through
the whole API stack; a variant does the same from two processes.

Nothing at module level imports a model: the process variant's children import this module
(multiprocessing's `spawn` pickles the target by name) before they set Django up.
"""

import multiprocessing
import os
import threading
import time

import pytest
from django.db import connection, connections

from tests.dburl import child_database_url

BATCH = 2_000


def _skip_unless_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL (SQLite serializes writers)")


@pytest.fixture
def api_key(transactional_db):
    """Overrides tests/conftest.py's: the threads must see a committed key."""
    _skip_unless_postgresql()
    from core.services import api_key_create

    return api_key_create(name="concurrent senders")[1]


@pytest.fixture
def subscription(transactional_db):
    from core import clock
    from subscriptions.services import subscription_create
    from tests.factories import CustomerFactory, hybrid_plan

    return subscription_create(
        customer=CustomerFactory(external_id="acme"),
        plan=hybrid_plan(),
        external_id="sub_acme",
        start_date=clock.today(),
        term_months=12,
    )


def events(numbers, timestamp: int) -> list[dict]:
    return [
        {
            "transaction_id": f"evt_{n:05d}",
            "external_subscription_id": "sub_acme",
            "code": "api_calls",
            "timestamp": timestamp,
            "properties": {},
        }
        for n in numbers
    ]


def _post(api_key: str, batch: list[dict]) -> tuple[int, dict]:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    answer = client.post("/api/v1/events/batch", {"events": batch}, format="json")
    return answer.status_code, answer.json()


def post_together(api_key: str, *batches: list[dict]) -> list[tuple[int, dict]]:
    """POST each batch from its own thread (own connection), all released at once."""
    barrier = threading.Barrier(len(batches))
    answers: list = [None] * len(batches)

    def send(slot: int, batch: list[dict]) -> None:
        try:
            connection.ensure_connection()  # connect before the start line, not after it
            barrier.wait(timeout=30)
            answers[slot] = _post(api_key, batch)
        except Exception as exc:  # reported by the assertion below, not lost in the thread
            answers[slot] = (None, repr(exc))
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=send, args=(slot, batch)) for slot, batch in enumerate(batches)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(status == 200 for status, _ in answers), answers
    return [body for _, body in answers]


def stored() -> int:
    from metering.models import Event

    return Event.objects.count()


def test_the_same_batch_twice_at_once_is_stored_once(api_key, subscription):
    batch = events(range(BATCH), int(time.time()))

    answers = post_together(api_key, batch, batch)

    assert stored() == BATCH
    assert [a["received"] for a in answers] == [BATCH, BATCH]
    assert sum(a["created"] for a in answers) == BATCH
    assert sum(a["duplicates"] for a in answers) == BATCH


def test_overlapping_batches_at_once_store_the_union_once(api_key, subscription):
    now = int(time.time())

    answers = post_together(api_key, events(range(0, 1500), now), events(range(500, 2000), now))

    assert stored() == BATCH
    assert sum(a["created"] for a in answers) == BATCH
    assert sum(a["duplicates"] for a in answers) == 1000  # events 500–1499, sent twice


def test_the_same_events_in_opposite_orders_at_once_are_stored_once(api_key, subscription):
    batch = events(range(BATCH), int(time.time()))

    answers = post_together(api_key, batch, batch[::-1])

    assert stored() == BATCH
    assert sum(a["created"] for a in answers) == BATCH
    assert sum(a["duplicates"] for a in answers) == BATCH


# --- two processes ----------------------------------------------------------------------------


def _child(database_url: str, api_key: str, batch: list[dict], barrier, answers) -> None:
    """A fresh interpreter (spawn): Django set up on the test database, then one POST."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's host, as in the parent
    try:
        connection.ensure_connection()
        barrier.wait(timeout=60)
        answers.put(_post(api_key, batch))
    except Exception as exc:
        answers.put((None, repr(exc)))
    finally:
        connections.close_all()


def test_the_same_batch_from_two_processes_at_once_is_stored_once(api_key, subscription):
    url = child_database_url()
    batch = events(range(BATCH), int(time.time()))
    spawn = multiprocessing.get_context("spawn")
    barrier, answers = spawn.Barrier(2), spawn.Queue()
    children = [
        spawn.Process(target=_child, args=(url, api_key, batch, barrier, answers)) for _ in range(2)
    ]
    for child in children:
        child.start()
    results = [answers.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)

    assert all(status == 200 for status, _ in results), results
    bodies = [body for _, body in results]
    assert stored() == BATCH
    assert sum(b["created"] for b in bodies) == BATCH
    assert sum(b["duplicates"] for b in bodies) == BATCH
