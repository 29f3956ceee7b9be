"""The portal's usage alerts page: a customer sees, adds and deletes only their own alerts."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import BillableMetric, Charge
from metering.models import AlertFiring, UsageAlert
from subscriptions.models import Subscription
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanAlertDefaultFactory,
    PlanFactory,
    PortalMembershipFactory,
    TokensMetricFactory,
    UsageAlertFactory,
    subscribe,
)

ALERTS = "/portal/alerts/"


def metered_plan(*metrics):
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"))
    for position, metric in enumerate(metrics, start=1):
        ChargeFactory(
            plan=plan,
            name=metric.name,
            metric=metric,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal("0.01"),
            default_quantity=Decimal("0"),
            position=position,
        )
    return plan


@pytest.fixture
def acme(db):
    """Acme: sub_acme on calls + tokens (with a plan alert), sub_acme_calls on calls only."""
    customer = CustomerFactory(external_id="acme", name="Acme", billing_email="ap@acme.example")
    plan = metered_plan(MetricFactory(), TokensMetricFactory())
    PlanAlertDefaultFactory(plan=plan, threshold=Decimal("2500"), name="Monthly budget")
    main = subscribe(customer=customer, plan=plan, external_id="sub_acme")
    subscribe(customer=customer, plan=metered_plan(MetricFactory()), external_id="sub_acme_calls")
    UsageAlert.objects.create(
        subscription=main,
        threshold=Decimal("2500"),
        name="Monthly budget",
        source="plan",
        plan_default=plan.alert_defaults.get(),
    )
    return customer


@pytest.fixture
def portal(acme, client):
    client.force_login(PortalMembershipFactory(customer=acme, user__username="ana").user)
    return client


@pytest.fixture
def globex(db):
    customer = CustomerFactory(external_id="globex", name="Globex")
    subscription = subscribe(
        customer=customer, plan=metered_plan(MetricFactory()), external_id="sub_globex"
    )
    alert = UsageAlertFactory(
        subscription=subscription, metric=MetricFactory(), threshold=7, name="Globex secret"
    )
    AlertFiring.objects.create(
        alert=alert,
        period_start=dt.date(2026, 1, 15),
        period_end=dt.date(2026, 2, 15),
        value=Decimal("9"),
        threshold=Decimal("7"),
        fired_at=dt.datetime(2026, 2, 1, 10, 5, tzinfo=dt.UTC),
    )
    return alert


def form(subscription="sub_acme", watch="bill", threshold="1000", name=""):
    """The add form's fields, by external id and metric code."""
    if watch not in ("bill", ""):
        watch = str(BillableMetric.objects.get(code=watch).pk)
    return {
        "subscription": Subscription.objects.get(external_id=subscription).pk,
        "watch": watch,
        "threshold": threshold,
        "name": name,
    }


def test_the_page_lists_the_customers_alerts_and_firings_only(portal, acme, globex):
    # Given an own alert that fired
    own = UsageAlertFactory(
        subscription=acme.subscriptions.get(external_id="sub_acme"),
        metric=MetricFactory(),
        threshold=Decimal("100000"),
        name="Calls",
    )
    AlertFiring.objects.create(
        alert=own,
        period_start=dt.date(2026, 1, 15),
        period_end=dt.date(2026, 2, 15),
        value=Decimal("100250"),
        threshold=Decimal("100000"),
        fired_at=dt.datetime(2026, 2, 1, 10, 5, tzinfo=dt.UTC),
    )

    # When
    response = portal.get(ALERTS)

    # Then both alerts show, the plan's without a delete button, and the firing with its value
    page = response.content.decode()
    assert response.status_code == 200
    assert "Monthly budget" in page and "$2,500.00" in page and "Your plan" in page
    assert "Calls" in page and "100,000" in page
    assert page.count('class="link-btn"') == 1
    assert reverse("portal:alert_delete", args=[own.pk]) in page
    assert "Feb 1, 2026 10:05 UTC" in page and "100,250" in page and "Jan 15 – Feb 14, 2026" in page
    assert "ap@acme.example" in page
    # the add form offers the customer's subscriptions and their metrics
    assert '<option value="bill">Estimated bill</option>' in page
    assert "sub_acme_calls</option>" in page and ">API calls</option>" in page
    assert ">Tokens</option>" in page
    # and nothing of Globex
    assert "Globex secret" not in page and "sub_globex" not in page
    assert 'href="/portal/alerts/"' in page  # the header link


def test_a_customer_adds_an_alert_on_a_metric(portal, acme):
    response = portal.post(ALERTS, form(watch="tokens", threshold="2000000", name=" Token cap "))

    assert response.status_code == 302 and response["Location"] == ALERTS
    alert = UsageAlert.objects.get(source="customer")
    assert (alert.subscription.external_id, alert.metric.code, alert.threshold, alert.name) == (
        "sub_acme",
        "tokens",
        Decimal("2000000"),
        "Token cap",
    )
    assert "Alert “Token cap” added." in portal.get(ALERTS).content.decode()


def test_a_customer_adds_an_alert_on_the_estimated_bill(portal):
    portal.post(ALERTS, form(subscription="sub_acme_calls", threshold="750.50"))

    alert = UsageAlert.objects.get(source="customer")
    assert (alert.subscription.external_id, alert.metric, alert.threshold) == (
        "sub_acme_calls",
        None,
        Decimal("750.50"),
    )
    assert str(alert) == "Estimated bill ≥ 750.5"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"threshold": "0"}, "Enter a threshold above zero."),
        ({"threshold": "-10"}, "Enter a threshold above zero."),
        ({"threshold": ""}, "Enter a threshold."),
        ({"threshold": "lots"}, "Enter the threshold as a number, e.g. 1000 or 250.50."),
        ({"threshold": "1.1234567"}, "Use at most 6 decimals in the threshold."),
        (
            {"subscription": "sub_acme_calls", "watch": "tokens"},
            "Subscription sub_acme_calls is not metered on Tokens: choose API calls, or the "
            "estimated bill.",
        ),
        ({"watch": ""}, "This field is required."),
        ({"name": "x" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
    ],
    ids=["zero", "negative", "empty", "text", "decimals", "unmetered", "metric", "name"],
)
def test_a_bad_alert_is_refused_with_a_message_and_nothing_is_saved(portal, fields, message):
    response = portal.post(ALERTS, form(**fields))

    assert response.status_code == 422
    assert message in response.content.decode()
    assert UsageAlert.objects.filter(source="customer").count() == 0


def test_another_customers_subscription_cannot_be_chosen(portal, globex):
    response = portal.post(ALERTS, form(subscription="sub_globex"))

    assert response.status_code == 422
    assert "Choose one of your active subscriptions." in response.content.decode()
    assert list(UsageAlert.objects.filter(source="customer")) == [globex]


def test_a_customer_deletes_their_own_alert_but_not_a_plan_alert(portal, acme):
    own = UsageAlertFactory(subscription=acme.subscriptions.get(external_id="sub_acme"))
    plan_alert = UsageAlert.objects.get(source="plan")

    deleted = portal.post(reverse("portal:alert_delete", args=[own.pk]))
    refused = portal.post(reverse("portal:alert_delete", args=[plan_alert.pk]), follow=True)

    assert deleted.status_code == 302
    assert list(UsageAlert.objects.all()) == [plan_alert]
    assert "comes with your plan and cannot be deleted" in refused.content.decode()


def test_another_customers_alert_is_not_found(portal, globex):
    response = portal.post(reverse("portal:alert_delete", args=[globex.pk]))

    assert response.status_code == 404
    assert UsageAlert.objects.filter(pk=globex.pk).exists()


def test_deleting_needs_a_post(portal, acme):
    own = UsageAlertFactory(subscription=acme.subscriptions.get(external_id="sub_acme"))

    assert portal.get(reverse("portal:alert_delete", args=[own.pk])).status_code == 405
    assert UsageAlert.objects.filter(pk=own.pk).exists()


def test_forms_are_csrf_protected(acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(PortalMembershipFactory(customer=acme).user)
    own = UsageAlertFactory(subscription=acme.subscriptions.get(external_id="sub_acme"))

    added = client.post(ALERTS, form())
    deleted = client.post(reverse("portal:alert_delete", args=[own.pk]))

    assert (added.status_code, deleted.status_code) == (403, 403)
    assert UsageAlert.objects.filter(source="customer").count() == 1
    assert 'name="csrfmiddlewaretoken"' in client.get(ALERTS).content.decode()


def test_the_page_needs_a_portal_login(db, client):
    assert client.get(ALERTS)["Location"].startswith("/portal/login/")
