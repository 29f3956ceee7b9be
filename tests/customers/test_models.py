"""Customer.timezone: any IANA zone the machine knows, checked when saved, never listed in the
schema (another machine's tzdata must not make `makemigrations --check` fail)."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from customers.models import Customer, time_zones
from tests.factories import CustomerFactory


def timezone_errors(name: str) -> list[str]:
    customer = CustomerFactory.build(timezone=name)
    try:
        customer.full_clean()
    except ValidationError as error:
        return error.message_dict.get("timezone", [])
    return []


@pytest.mark.parametrize("name", ["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
def test_an_iana_zone_is_accepted(db, name):
    assert timezone_errors(name) == []


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "europe/paris", "Paris", "../etc", "posix/Europe/Paris"]
)
def test_an_unknown_zone_is_refused_with_a_message(db, name):
    assert timezone_errors(name) == [
        f"'{name}' is not a time zone: use an IANA zone name such as Europe/Paris or "
        "America/New_York."
    ]


def test_localtime_is_refused_it_is_the_servers_own_setting(db):
    assert timezone_errors("localtime") == [
        "'localtime' follows the server's own setting, not a place: name the customer's zone, "
        "e.g. Europe/Paris or America/New_York."
    ]


def test_the_zone_list_is_not_part_of_the_schema(db):
    field = Customer._meta.get_field("timezone")

    assert field.choices is None
    assert "localtime" not in time_zones()
    assert "Europe/Paris" in time_zones()


def test_a_machine_with_other_tzdata_needs_no_migration(db, monkeypatch):
    # Given a machine whose tzdata knows only two zones
    monkeypatch.setattr("zoneinfo.available_timezones", lambda: {"UTC", "Europe/Paris"})
    time_zones.cache_clear()
    try:
        # Then the schema does not change (this raises SystemExit when a migration is missing)
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    finally:
        time_zones.cache_clear()


def test_the_admin_lists_the_machines_zones_and_refuses_localtime(admin_client):
    page = admin_client.get("/admin/customers/customer/add/")

    assert page.status_code == 200
    assert '<option value="Europe/Paris">Europe/Paris</option>' in page.content.decode()
    assert '<option value="localtime">' not in page.content.decode()
