"""Finance sets plan default alerts, and sees and pauses subscriptions' alerts, in the admin."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from catalog.models import PlanAlertDefault
from metering.models import AlertFiring, UsageAlert
from tests.factories import (
    CustomerFactory,
    MetricFactory,
    UsageAlertFactory,
    UserFactory,
    hybrid_plan,
    subscribe,
)


@pytest.fixture
def finance(db, client):
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


def _plan_form(plan, alerts):
    data = {
        "code": plan.code,
        "name": plan.name,
        "currency": "USD",
        "additional_currencies": "",
        "billing_interval_months": "1",
        "trial_days": "0",
        "active": "on",
        "renewal_uplift_percent": "",
        "renewal_uplift_on": "net",
        "charges-TOTAL_FORMS": "0",
        "charges-INITIAL_FORMS": "0",
        "charges-MIN_NUM_FORMS": "0",
        "charges-MAX_NUM_FORMS": "1000",
        "alert_defaults-TOTAL_FORMS": str(len(alerts)),
        "alert_defaults-INITIAL_FORMS": "0",
        "alert_defaults-MIN_NUM_FORMS": "0",
        "alert_defaults-MAX_NUM_FORMS": "1000",
        "ssp_lines-TOTAL_FORMS": "0",
        "ssp_lines-INITIAL_FORMS": "0",
        "ssp_lines-MIN_NUM_FORMS": "0",
        "ssp_lines-MAX_NUM_FORMS": "1000",
    }
    for i, (metric, threshold, name) in enumerate(alerts):
        data |= {
            f"alert_defaults-{i}-metric": metric.pk if metric else "",
            f"alert_defaults-{i}-threshold": threshold,
            f"alert_defaults-{i}-name": name,
        }
    return data


def test_finance_adds_default_alerts_to_a_plan(finance):
    plan = hybrid_plan()

    response = finance.post(
        f"/admin/catalog/plan/{plan.pk}/change/",
        _plan_form(plan, [(None, "2000", "Budget"), (MetricFactory(), "50000", "")]),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert sorted(
        PlanAlertDefault.objects.values_list("metric__code", "threshold", "name"),
        key=str,
    ) == [("api_calls", Decimal("50000"), ""), (None, Decimal("2000"), "Budget")]


def test_a_default_on_a_metric_the_plan_does_not_price_is_refused(finance):
    plan = hybrid_plan()
    seats = MetricFactory(code="seats", name="Seats")

    response = finance.post(
        f"/admin/catalog/plan/{plan.pk}/change/", _plan_form(plan, [(seats, "10", "")])
    )

    assert response.status_code == 200
    assert f"Plan &#x27;{plan.code}&#x27; has no charge on Seats" in response.content.decode()
    assert PlanAlertDefault.objects.count() == 0


def test_finance_sees_alerts_and_firings_which_are_read_only(finance):
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    alert = UsageAlertFactory(subscription=subscription, metric=MetricFactory(), threshold=5)
    AlertFiring.objects.create(
        alert=alert,
        period_start=dt.date(2026, 1, 15),
        period_end=dt.date(2026, 2, 15),
        value=Decimal("6"),
        threshold=Decimal("5"),
        fired_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
    )

    assert "sub_acme" in finance.get("/admin/metering/usagealert/").content.decode()
    assert finance.get(f"/admin/metering/usagealert/{alert.pk}/change/").status_code == 200
    assert "sub_acme" in finance.get("/admin/metering/alertfiring/").content.decode()
    assert finance.get("/admin/metering/alertfiring/add/").status_code == 403
    assert finance.get(f"/admin/metering/usagealert/{alert.pk}/delete/").status_code == 403


def test_finance_pauses_an_alert(finance):
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    alert = UsageAlertFactory(subscription=subscription, threshold=Decimal("900"), name="Budget")

    response = finance.post(
        f"/admin/metering/usagealert/{alert.pk}/change/",
        {
            "threshold": "1200",
            "name": "Budget",
            "firings-TOTAL_FORMS": "0",
            "firings-INITIAL_FORMS": "0",
            "firings-MIN_NUM_FORMS": "0",
            "firings-MAX_NUM_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    alert = UsageAlert.objects.get()
    assert (alert.threshold, alert.active, alert.subscription, alert.metric) == (
        Decimal("1200"),
        False,
        subscription,
        None,
    )
