"""Logins to the admin and the portal are throttled by django-axes, per username and address."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.factories import PortalMembershipFactory, UserFactory

ADMIN_LOGIN = "/admin/login/"
PORTAL_LOGIN = "/portal/login/"


@pytest.fixture
def staff(db):
    return UserFactory(username="fin", is_staff=True)  # password "pass-1234"


@pytest.fixture
def member(db):
    return PortalMembershipFactory(user__username="ana").user


def attempt(client: Client, url: str, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize(
    ("url", "user_fixture"), [(ADMIN_LOGIN, "staff"), (PORTAL_LOGIN, "member")]
)
def test_after_five_failures_the_right_password_is_refused_with_the_lockout_page(
    request, client, url, user_fixture
):
    # Given a user
    user = request.getfixturevalue(user_fixture)

    # When four wrong passwords are sent, each is an ordinary failure
    for _ in range(4):
        assert attempt(client, url, user.username, "wrong").status_code == 200

    # and the fifth locks the login out
    fifth = attempt(client, url, user.username, "wrong")
    assert fifth.status_code == 429

    # Then the right password is refused too, with a page that says why and for how long
    answer = attempt(client, url, user.username, "pass-1234")
    assert answer.status_code == 429
    assert answer["Retry-After"] == "900"
    assert "lockout.html" in [t.name for t in answer.templates]
    page = answer.content.decode()
    assert "Too many failed logins" in page
    assert f"After 5 failed attempts, logins as <strong>{user.username}</strong>" in page
    assert "locked for 15 minutes" in page
    assert "_auth_user_id" not in client.session

    # while the same user from another address, and another user from this one, may log in
    other = Client()
    assert attempt(other, url, user.username, "pass-1234", ip="10.0.0.2").status_code == 302
    someone = UserFactory(username="someone", is_staff=True)
    PortalMembershipFactory(user=someone)
    assert attempt(Client(), url, "someone", "pass-1234").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, staff):
    for _ in range(4):
        attempt(client, ADMIN_LOGIN, "fin", "wrong")

    assert attempt(client, ADMIN_LOGIN, "fin", "pass-1234").status_code == 302

    assert not AccessAttempt.objects.filter(username="fin").exists()


def test_force_login_in_tests_is_not_affected(client, staff):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
