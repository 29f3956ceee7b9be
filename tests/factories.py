import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from catalog.models import BillableMetric, Charge, Plan
from customers.models import Customer, PortalMembership
from quotes.models import Quote
from subscriptions.services import subscription_create


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust_{n:04d}")
    name = factory.Sequence(lambda n: f"Customer {n} Inc.")
    currency = "USD"
    billing_email = factory.LazyAttribute(lambda o: f"billing@{o.external_id}.example")
    address = "1 Market Street\nSan Francisco, CA"
    payment_terms_days = 30
    tax_rate = Decimal("0")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-1234")


class PortalMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PortalMembership

    user = factory.SubFactory(UserFactory)
    customer = factory.SubFactory(CustomerFactory)


class MetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillableMetric
        django_get_or_create = ["code"]

    code = "api_calls"
    name = "API calls"
    aggregation = BillableMetric.Aggregation.COUNT
    field_name = ""


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan_{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    currency = "USD"
    billing_interval_months = 1


class ChargeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Charge

    plan = factory.SubFactory(PlanFactory)
    name = "Platform fee"
    billing_timing = Charge.Timing.IN_ADVANCE
    unit_price = Decimal("100")
    default_quantity = Decimal("1")


def hybrid_plan(
    *,
    platform_fee="500.00",
    seat_price="25.00",
    call_price="0.002",
    currency="USD",
    seats="5",
    trial_days=0,
):
    """The thin-path plan: platform fee + seats in advance, per-call usage in arrears."""
    plan = PlanFactory(currency=currency, trial_days=trial_days)
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal(platform_fee), position=0)
    ChargeFactory(
        plan=plan,
        name="Seats",
        unit_price=Decimal(seat_price),
        unit_name="seat",
        default_quantity=Decimal(seats),
        position=1,
    )
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal(call_price),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=2,
    )
    return plan


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


class TokensMetricFactory(MetricFactory):
    """A sum metric: the total of `properties.tokens` over a period."""

    code = "tokens"
    name = "Tokens"
    aggregation = BillableMetric.Aggregation.SUM
    field_name = "tokens"


class QuoteFactory(factory.django.DjangoModelFactory):
    """A quote without lines (call quotes.services.quote_populate_lines to add the plan's)."""

    class Meta:
        model = Quote

    customer = factory.SubFactory(CustomerFactory)
    plan = factory.SubFactory(PlanFactory)
    start_date = dt.date(2026, 2, 1)
    term_months = 3
    valid_until = dt.date(2026, 1, 31)
    subscription_external_id = factory.Sequence(lambda n: f"sub_q{n:04d}")


def subscribe(*, customer, plan, external_id="sub_acme", start="2026-01-15", term_months=3):
    """A subscription made through the real service: prices snapshotted, schedule laid out."""
    return subscription_create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        start_date=day(start),
        term_months=term_months,
    )


class PlanAlertDefaultFactory(factory.django.DjangoModelFactory):
    """A plan's default usage alert (metric None: the estimated bill)."""

    class Meta:
        model = "catalog.PlanAlertDefault"

    plan = factory.SubFactory(PlanFactory)
    metric = None
    threshold = Decimal("1000")
    name = ""


class UsageAlertFactory(factory.django.DjangoModelFactory):
    """A customer's own alert on a subscription, made directly (the service checks the metric)."""

    class Meta:
        model = "metering.UsageAlert"

    metric = None
    threshold = Decimal("1000")
    name = ""
    source = "customer"
