"""Usage alerts (metering.alerts): fired once per billing period, emailed, copied from plans."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import connection

import metering.alerts
from catalog.models import Charge
from core.errors import Conflict, ValidationError
from metering.alerts import alerts_evaluate, usage_alert_create, usage_alert_delete
from metering.models import AlertFiring, UsageAlert
from metering.services import events_ingest
from metering.tasks import evaluate_alerts
from subscriptions.models import Subscription
from subscriptions.services import prepaid_credit_grant
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanAlertDefaultFactory,
    PlanFactory,
    TokensMetricFactory,
    UsageAlertFactory,
    subscribe,
)

# The subscription starts on Jan 15: periods [Jan 15, Feb 15), [Feb 15, Mar 15), [Mar 15, Apr 15).


def usage_plan():
    """A 500.00 platform fee in advance, then api_calls at 0.125 and tokens in arrears."""
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"), position=0)
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.125"),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=1,
    )
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.000002"),
        unit_name="token",
        default_quantity=Decimal("0"),
        position=2,
    )
    return plan


@pytest.fixture
def subscription(db):
    customer = CustomerFactory(external_id="acme", name="Acme", billing_email="ap@acme.example")
    return subscribe(customer=customer, plan=usage_plan())


def send_calls(subscription, count: int, at: str, *, first: int = 0) -> None:
    """`count` api_calls events at `at`, ingested as the API does (the clock is at `at`)."""
    with time_machine.travel(at, tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"{subscription.external_id}-{at}-{first + n}",
                    "external_subscription_id": subscription.external_id,
                    "code": "api_calls",
                }
                for n in range(count)
            ]
        )


@pytest.fixture
def evaluate(django_capture_on_commit_callbacks):
    """Run the evaluation at a moment, executing its after-commit emails."""

    def run(at: str) -> list[AlertFiring]:
        with (
            time_machine.travel(at, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            return alerts_evaluate()

    return run


def calls_alert(subscription, threshold="100", name="Calls"):
    return usage_alert_create(
        subscription=subscription,
        metric=MetricFactory(),
        threshold=Decimal(threshold),
        name=name,
    )


# --- firing once per period -----------------------------------------------------------------------


def test_a_metric_threshold_fires_once_per_period_and_emails_the_billing_contact(
    subscription, evaluate
):
    # Given an alert at 100 calls and 120 calls in the period [Jan 15, Feb 15)
    alert = calls_alert(subscription)
    send_calls(subscription, 120, "2026-02-01 10:00Z")

    # When the job runs, then runs again (with more usage) in the same period
    first = evaluate("2026-02-01 10:05Z")
    send_calls(subscription, 30, "2026-02-03 10:00Z", first=120)
    second = evaluate("2026-02-03 10:05Z")

    # Then it fired once, with the value it saw, and one email went out
    assert [(f.alert, f.value, f.threshold) for f in first] == [(alert, Decimal(120), Decimal(100))]
    assert second == []
    firing = AlertFiring.objects.get()
    assert (str(firing.period_start), str(firing.period_end)) == ("2026-01-15", "2026-02-15")
    assert firing.fired_at.isoformat() == "2026-02-01T10:05:00+00:00"
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ap@acme.example"]
    assert email.from_email == "billing@tessellate.example"
    assert email.subject == "Usage alert on sub_acme: Calls"
    assert (
        'Your usage alert "Calls" on subscription sub_acme was reached: usage of API calls is 120 '
        "in the billing period Jan 15, 2026 to Feb 14, 2026, at or above the threshold of 100."
    ) in email.body


def test_it_fires_again_in_the_next_period(subscription, evaluate):
    # Given an alert that fired in the first period
    calls_alert(subscription)
    send_calls(subscription, 100, "2026-02-01 10:00Z")
    evaluate("2026-02-01 10:05Z")

    # When the next period [Feb 15, Mar 15) starts (its usage starts from zero), then reaches 100
    at_start = evaluate("2026-02-15 00:05Z")
    send_calls(subscription, 100, "2026-02-20 10:00Z")
    later = evaluate("2026-02-20 10:05Z")

    # Then it fires again, once, for the new period
    assert at_start == []
    assert [(str(f.period_start), f.value) for f in later] == [("2026-02-15", Decimal(100))]
    assert sorted(AlertFiring.objects.values_list("period_start", flat=True)) == [
        subscription.billing_periods.get(sequence=0).start_date,
        subscription.billing_periods.get(sequence=1).start_date,
    ]
    assert len(mail.outbox) == 2


def test_below_the_threshold_nothing_fires_and_reaching_it_exactly_fires(subscription, evaluate):
    # Given an alert at 100 calls, 99 calls, and noise that does not count: another metric, and
    # calls before the period
    calls_alert(subscription)
    send_calls(subscription, 5, "2026-01-14 12:00Z")  # before the subscription's first period
    send_calls(subscription, 99, "2026-02-01 10:00Z")
    with time_machine.travel("2026-02-01 10:00Z", tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": "tok-1",
                    "external_subscription_id": "sub_acme",
                    "code": "tokens",
                    "properties": {"tokens": 500},
                }
            ]
        )

    # When the job runs, then once more after the 100th call
    below = evaluate("2026-02-01 10:05Z")
    send_calls(subscription, 1, "2026-02-01 11:00Z", first=99)
    at_threshold = evaluate("2026-02-01 11:05Z")

    # Then nothing at 99; at exactly 100 it fires (the threshold is reached, "at or above")
    assert below == []
    assert [f.value for f in at_threshold] == [Decimal(100)]
    assert len(mail.outbox) == 1


def test_a_bill_threshold_counts_the_fixed_fees_and_the_rounded_usage(subscription, evaluate):
    # Given an alert on the estimated bill at 510.00 USD: the upcoming invoice (Feb 15) holds the
    # usage of the period in progress and the next period's 500.00 platform fee in advance
    alert = usage_alert_create(
        subscription=subscription, metric=None, threshold=Decimal("510"), name=""
    )

    # When 79 calls cost 9.875, rounded to 9.88: the estimate is 509.88
    send_calls(subscription, 79, "2026-02-01 10:00Z")
    below = evaluate("2026-02-01 10:05Z")
    # and 80 calls cost 10.00: the estimate is 510.00
    send_calls(subscription, 1, "2026-02-01 11:00Z", first=79)
    reached = evaluate("2026-02-01 11:05Z")

    # Then it fires at 510.00, not before, and the email shows amounts in the currency
    assert below == []
    assert [(f.alert, f.value) for f in reached] == [(alert, Decimal("510.00"))]
    assert str(alert) == "Estimated bill ≥ 510"
    assert (
        "the estimated bill (your next invoice as it stands, before tax) is $510.00 in the "
        "billing period Jan 15, 2026 to Feb 14, 2026, at or above the threshold of $510.00."
    ) in mail.outbox[0].body


def test_a_bill_threshold_at_or_below_the_fixed_fees_fires_as_the_period_starts(
    subscription, evaluate
):
    # Given an alert at 500.00 and no usage at all
    usage_alert_create(subscription=subscription, metric=None, threshold=Decimal("500"))

    # When the job runs on the first day of the second period
    firings = evaluate("2026-02-15 00:05Z")

    # Then the platform fee alone (in advance, for Mar 15) reaches it
    assert [(str(f.period_start), f.value) for f in firings] == [("2026-02-15", Decimal("500"))]


def test_the_estimated_bill_is_the_upcoming_invoices_subtotal_before_tax(db, evaluate):
    # Given a customer taxed at 10 % with 5.00 of prepaid credit, and an alert at 510.00
    customer = CustomerFactory(
        external_id="acme", billing_email="ap@acme.example", tax_rate=Decimal("10")
    )
    subscription = subscribe(customer=customer, plan=usage_plan())
    with time_machine.travel("2026-01-15 00:00Z", tick=False):
        prepaid_credit_grant(subscription=subscription, amount=Decimal("5.00"))
    alert = usage_alert_create(subscription=subscription, metric=None, threshold=Decimal("510"))

    # When 80 calls cost 10.00: the credit pays 5.00 of it, so the bill is 505.00 (555.50 with
    # tax, which the threshold does not count); then 120 calls: 15.00 − 5.00 + 500.00 = 510.00
    send_calls(subscription, 80, "2026-02-01 10:00Z")
    below = evaluate("2026-02-01 10:05Z")
    send_calls(subscription, 40, "2026-02-01 11:00Z", first=80)
    reached = evaluate("2026-02-01 11:05Z")

    # Then it fires on the subtotal before tax, and the credit is not drawn by the estimate
    assert below == []
    assert [(f.alert, f.value) for f in reached] == [(alert, Decimal("510.00"))]
    assert subscription.prepaid_credits.get().remaining == Decimal("5.00")


def test_in_the_last_period_the_estimated_bill_has_no_fee_in_advance(subscription, evaluate):
    # Given an alert at 10.00 in the last period (Mar 15 – Apr 15): no next period to bill
    usage_alert_create(subscription=subscription, metric=None, threshold=Decimal("10"))

    # When 79 calls (9.88), then 80 (10.00)
    send_calls(subscription, 79, "2026-03-20 10:00Z")
    below = evaluate("2026-03-20 10:05Z")
    send_calls(subscription, 1, "2026-03-20 11:00Z", first=79)
    reached = evaluate("2026-03-20 11:05Z")

    # Then the usage alone is the bill
    assert below == []
    assert [(str(f.period_start), f.value) for f in reached] == [("2026-03-15", Decimal("10.00"))]


def test_the_estimate_is_injected_and_only_asked_for_when_a_bill_alert_is_pending(
    subscription, django_capture_on_commit_callbacks
):
    asked = []

    def estimate(*, subscription, as_of):
        asked.append((subscription.external_id, as_of))
        return Decimal("1000")

    calls_alert(subscription, threshold="1000000")
    with time_machine.travel("2026-02-01 10:05Z", tick=False):
        assert alerts_evaluate(estimate=estimate) == []
        usage_alert_create(subscription=subscription, metric=None, threshold=Decimal("999"))
        with django_capture_on_commit_callbacks(execute=False):
            (firing,) = alerts_evaluate(estimate=estimate)
    assert asked == [("sub_acme", dt.date(2026, 2, 1))]
    assert firing.value == Decimal("1000")


def test_paused_alerts_and_ended_subscriptions_do_not_fire(subscription, evaluate):
    # Given a paused alert, and an ended subscription with an active one, both over threshold
    UsageAlertFactory(subscription=subscription, metric=MetricFactory(), threshold=1, active=False)
    ended = subscribe(customer=subscription.customer, plan=subscription.plan, external_id="sub_old")
    Subscription.objects.filter(pk=ended.pk).update(status=Subscription.Status.ENDED)
    UsageAlertFactory(subscription=ended, metric=MetricFactory(), threshold=1)
    send_calls(subscription, 10, "2026-02-01 10:00Z")
    send_calls(ended, 10, "2026-02-01 10:00Z", first=100)

    # When
    firings = evaluate("2026-02-01 10:05Z")

    # Then
    assert firings == []
    assert AlertFiring.objects.count() == 0
    assert mail.outbox == []


def test_the_task_evaluates_and_returns_the_number_fired(
    subscription, django_capture_on_commit_callbacks
):
    calls_alert(subscription, threshold="1")
    send_calls(subscription, 1, "2026-02-01 10:00Z")

    with time_machine.travel("2026-02-01 10:05Z", tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert evaluate_alerts() == 1
        assert evaluate_alerts() == 0

    assert len(mail.outbox) == 1


def test_a_subscription_that_fails_does_not_stop_the_others(subscription, evaluate, monkeypatch):
    # Given two subscriptions over their thresholds, and the usage read failing for the first
    other = subscribe(customer=CustomerFactory(), plan=subscription.plan, external_id="sub_other")
    calls_alert(subscription, threshold="1")
    calls_alert(other, threshold="1")
    send_calls(subscription, 1, "2026-02-01 10:00Z")
    send_calls(other, 1, "2026-02-01 10:00Z")
    read_usage = metering.alerts.usage_for_period

    def failing_for_acme(*, subscription, period, **options):
        if subscription.external_id == "sub_acme":
            raise RuntimeError("database hiccup")
        return read_usage(subscription=subscription, period=period, **options)

    monkeypatch.setattr(metering.alerts, "usage_for_period", failing_for_acme)

    # When
    firings = evaluate("2026-02-01 10:05Z")

    # Then the other fires; the failed one is tried again on the next run
    assert [f.alert.subscription.external_id for f in firings] == ["sub_other"]
    monkeypatch.setattr(metering.alerts, "usage_for_period", read_usage)
    assert [f.alert.subscription.external_id for f in evaluate("2026-02-01 10:10Z")] == ["sub_acme"]


def test_the_job_is_scheduled_every_five_minutes(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="evaluate-usage-alerts")
    assert (task.task, task.interval.every, task.interval.period, task.enabled) == (
        "metering.tasks.evaluate_alerts",
        300,
        "seconds",
        True,
    )


# --- plan defaults ------------------------------------------------------------------------------


def test_plan_defaults_are_copied_to_each_active_subscription_once(subscription, evaluate):
    # Given two defaults on the plan, a second subscription, and an ended one
    plan = subscription.plan
    budget = PlanAlertDefaultFactory(plan=plan, threshold=Decimal("2000"), name="Budget")
    calls = PlanAlertDefaultFactory(plan=plan, metric=MetricFactory(), threshold=Decimal("50000"))
    other = subscribe(customer=CustomerFactory(), plan=plan, external_id="sub_other")
    ended = subscribe(customer=CustomerFactory(), plan=plan, external_id="sub_ended")
    Subscription.objects.filter(pk=ended.pk).update(status=Subscription.Status.ENDED)
    # and a plan without defaults
    subscribe(customer=CustomerFactory(), plan=usage_plan(), external_id="sub_bare")

    # When the job runs twice
    evaluate("2026-02-01 10:05Z")
    evaluate("2026-02-01 10:10Z")

    # Then each active subscription of the plan has one copy of each default
    copies = sorted(
        UsageAlert.objects.values_list(
            "subscription__external_id", "plan_default", "source", "threshold", "name"
        )
    )
    assert copies == sorted(
        [
            ("sub_acme", budget.pk, "plan", Decimal("2000"), "Budget"),
            ("sub_acme", calls.pk, "plan", Decimal("50000"), ""),
            ("sub_other", budget.pk, "plan", Decimal("2000"), "Budget"),
            ("sub_other", calls.pk, "plan", Decimal("50000"), ""),
        ]
    )
    assert UsageAlert.objects.get(subscription=other, plan_default=calls).metric.code == "api_calls"


def test_a_subscription_made_later_gets_the_defaults_and_they_fire(subscription, evaluate):
    # Given a plan default at 10 calls, added after the subscription was made
    PlanAlertDefaultFactory(plan=subscription.plan, metric=MetricFactory(), threshold=10)
    send_calls(subscription, 10, "2026-02-01 10:00Z")

    # When the job runs
    firings = evaluate("2026-02-01 10:05Z")

    # Then the copy is made and fires in the same run
    assert [(f.alert.source, f.value) for f in firings] == [("plan", Decimal(10))]
    assert str(firings[0].alert) == "API calls ≥ 10"
    assert len(mail.outbox) == 1


# --- customers' own alerts (service rules) --------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (Decimal("0"), "Enter a threshold above zero."),
        (Decimal("-5"), "Enter a threshold above zero."),
        (Decimal("NaN"), "Enter a threshold above zero."),
        (Decimal("1.0000001"), "Use at most 6 decimals in the threshold."),
        (Decimal("1e22"), "That threshold is too large: use at most 22 digits before the decimal"),
    ],
)
def test_a_customer_threshold_must_be_above_zero(subscription, threshold, message):
    with pytest.raises(ValidationError) as error:
        usage_alert_create(subscription=subscription, metric=None, threshold=threshold)

    assert error.value.message.startswith(message)
    assert error.value.details == {"field": "threshold"}
    assert UsageAlert.objects.count() == 0


def test_a_customer_alert_watches_a_metric_the_subscription_is_metered_on(subscription):
    seats = MetricFactory(code="seats", name="Seats")

    with pytest.raises(ValidationError) as error:
        usage_alert_create(subscription=subscription, metric=seats, threshold=Decimal("5"))

    assert error.value.message == (
        "Subscription sub_acme is not metered on Seats: choose API calls or Tokens, or the "
        "estimated bill."
    )
    assert UsageAlert.objects.count() == 0


def test_the_same_alert_twice_is_refused(subscription):
    calls_alert(subscription, threshold="100")

    with pytest.raises(ValidationError) as error:
        calls_alert(subscription, threshold="100.000")

    assert error.value.message == (
        "Subscription sub_acme already has this alert (“Calls”): choose another threshold."
    )
    assert UsageAlert.objects.count() == 1


def test_plan_alerts_cannot_be_deleted_and_own_ones_can(subscription, evaluate):
    PlanAlertDefaultFactory(plan=subscription.plan)
    evaluate("2026-02-01 10:05Z")
    plan_alert = UsageAlert.objects.get(source="plan")
    own = calls_alert(subscription)

    with pytest.raises(Conflict, match="comes with your plan"):
        usage_alert_delete(alert=plan_alert)
    usage_alert_delete(alert=own)
    usage_alert_delete(alert=own)  # a double submit is harmless

    assert list(UsageAlert.objects.all()) == [plan_alert]


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_fire_once(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions are tested on PostgreSQL")

    # Given an alert over its threshold and a plan default not yet copied
    customer = CustomerFactory(external_id="acme", billing_email="ap@acme.example")
    subscription = subscribe(customer=customer, plan=usage_plan())
    PlanAlertDefaultFactory(plan=subscription.plan, threshold=Decimal("1"))
    calls_alert(subscription)
    send_calls(subscription, 150, "2026-02-01 10:00Z")
    barrier, both_read = threading.Barrier(2), threading.Barrier(2)
    outcomes: list[object] = []
    read_usage = metering.alerts.usage_for_period

    def usage_read_by_both(**kwargs):
        # Both runs have seen "not fired yet" before either inserts: the constraint decides.
        both_read.wait(timeout=10)
        return read_usage(**kwargs)

    monkeypatch.setattr(metering.alerts, "usage_for_period", usage_read_by_both)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(len(alerts_evaluate()))
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    # When two workers evaluate at the same moment
    with time_machine.travel("2026-02-01 10:05Z", tick=False):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # Then between them each alert fired once (one copy of the default), and two emails went out
    assert sorted(outcomes, key=str) == [0, 2], outcomes
    assert UsageAlert.objects.filter(source="plan").count() == 1
    assert AlertFiring.objects.count() == 2
    assert sorted(m.subject for m in mail.outbox) == [
        "Usage alert on sub_acme: Calls",
        "Usage alert on sub_acme: Estimated bill ≥ 1",
    ]


def test_an_alert_of_a_customer_without_billing_email_fires_and_sends_nothing(
    subscription, evaluate
):
    # Given a customer whose billing email finance has not set yet
    subscription.customer.billing_email = ""
    subscription.customer.save()
    calls_alert(subscription)
    send_calls(subscription, 120, "2026-02-01 10:00Z")

    # When the job runs
    fired = evaluate("2026-02-01 10:05Z")

    # Then the firing is recorded (portal and admin show it) and no email goes to nobody
    assert len(fired) == 1 and AlertFiring.objects.count() == 1
    assert mail.outbox == []
