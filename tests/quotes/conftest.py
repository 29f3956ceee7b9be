import pytest
import time_machine
from django.contrib.auth.models import Group

from tests.factories import UserFactory


@pytest.fixture
def admin_clock():
    """The admin tests' today: Mar 2, 2026 (quotes start Mar 15, valid until Mar 31)."""
    with time_machine.travel("2026-03-02 10:00Z", tick=False):
        yield


@pytest.fixture
def sales_client(db, client, admin_clock):
    """A sales rep, logged in to the admin."""
    rep = UserFactory(username="rep", is_staff=True)
    rep.groups.add(Group.objects.get(name="Sales"))
    client.force_login(rep)
    return client
