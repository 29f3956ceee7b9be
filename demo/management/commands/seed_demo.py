"""Seed a demo company — Tessellate AI, an AI API vendor, and its customers — through the services.

Idempotent: everything is keyed by a stable external id, code, username, quote subscription id or
payment reference, and checked before it is made; usage events carry deterministic transaction ids,
so a second run only finds duplicates. Running it twice changes nothing.

History is replayed day by day, a year of it, from the first quote (395 days ago) to today:
quotes are sent, accepted or declined (the daily job expires the stale ones, the renewal job drafts
renewal quotes 60 days ahead), contracts are amended and renewed, yesterday's usage is ingested,
`billing_run(today=day)` bills what is due, finance issues credit notes, payments arrive, the
revenue contracts follow the subscriptions and, on each month's first day, the recognition run
posts the month that ended; the journal job posts the day's documents. The services read the time
through `core.clock` only; the replay points that helper at each simulated day
(`unittest.mock.patch`), so issue and due dates, acceptance and payment times, and therefore aging,
look like those of a company that has been billing for a year.
Invoice emails are not sent for seeded history (the email backend is a dummy while seeding).

The year: four first customers signed 11-12 months ago (Halcyon on Enterprise billed yearly up
front, 15 more seats mid-term invoiced at once, renewed for a second year; Cobalt upgraded from
Growth to Enterprise mid-month; Wren and Saltmarsh, each credited once: a service incident on a
fixed fee, a metering fault on usage), nineteen more 3-4 months ago as the company grew (a seat
change, a cancellation, a month of collections: see below). After the replay, finance closes the
months in order, from the first to the one before last (each on the 5th of the next month: cash
review, then the close checklist); last month stays open for the month-end close walkthrough
(docs/revrec.md). `manage.py audit_ledger --strict` finds nothing on the result.

The catalog shows the pricing features on real invoices: graduated token tiers (Growth,
Enterprise), a minimum token commitment on Enterprise (true-up lines in the early months), 1,000
free API calls a month and a 14-day trial on Starter (a prorated first invoice), Growth also sold
in EUR (two customers billed in euros), a Starter list-price rise from the first day of next month
(existing subscriptions keep their price; quotes starting from then show the new one) and a
prepaid launch pack of tokens and money on one subscription (credit lines).
A database seeded before these were added is extended, not rewritten: what the old catalog cannot
sell (EUR) is skipped with a warning.
"""

import datetime as dt
import logging
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings

from catalog import rating
from catalog.models import BillableMetric, Charge, ChargeTier, Plan
from core import clock
from core.models import ApiKey
from core.money import plain, round_money
from core.periods import add_months
from core.services import api_key_create
from customers.models import Customer, PortalMembership
from demo import summary_text
from invoicing.balance import credit_balance
from invoicing.corrections import credit_note_issue
from invoicing.models import CreditNote, Invoice, InvoiceLine
from invoicing.services import billing_run
from metering.models import Event
from metering.services import MAX_BATCH, events_ingest
from quotes.amendments import amendment_populate_lines, quote_amendment_create
from quotes.models import ApprovalRule, Quote, QuoteLine, QuoteLinePhase
from quotes.renewals import renewal_quote_of, renewals_run
from quotes.services import (
    quote_accept,
    quote_decline,
    quote_mark_sent,
    quote_populate_lines,
    quote_submit,
    quotes_expire_overdue,
)
from receivables.models import Payment, Refund, WriteOff
from receivables.selectors import invoice_amount_due
from receivables.services import (
    invoice_write_off,
    payment_record,
    payment_reverse,
    refund_record,
)
from revrec.close import period_cash_review, period_close
from revrec.models import AccountingPeriod, RecognitionLine
from revrec.postings import journal_sync
from revrec.services import revrec_sync
from subscriptions.changes import items_in_force, subscription_cancel, subscription_set_quantity
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionChange
from subscriptions.services import prepaid_credit_grant

DEFAULT_EVENTS_PER_SUBSCRIPTION = 3600  # per 100 days: ~110k events for the 23 subscriptions
API_KEY_NAME = "Demo metering client"

# ----------------------------------------------------------------------------------------------
# The company, as data
# ----------------------------------------------------------------------------------------------

METRICS = [
    {
        "code": "api_calls",
        "name": "API calls",
        "description": "One event per inference API request.",
        "aggregation": BillableMetric.Aggregation.COUNT,
        "field_name": "",
    },
    {
        "code": "tokens",
        "name": "Tokens",
        "description": "Input plus output tokens processed, from properties.tokens.",
        "aggregation": BillableMetric.Aggregation.SUM,
        "field_name": "tokens",
    },
]


M = 1_000_000


@dataclass(frozen=True)
class ChargeSpec:
    """One price of a plan, in one currency, from one date."""

    key: str  # shared by the versions and currencies of one price (and the charge's position)
    name: str
    unit: str
    metric: str | None = None  # None: a fixed fee (in advance); set: usage (in arrears)
    unit_price: str = "0"  # standard model
    tiers: tuple[tuple[int | None, str], ...] = ()  # graduated model: (up to, unit price)
    quantity: int | None = 1  # fixed fees: default quantity (None: the plan's default seats)
    free_units: int = 0  # per period
    min_amount: str | None = None  # minimum commitment per period (a true-up line tops it up)
    prorated: bool = False  # a period billed from inside (after a trial) costs its days' share
    currency: str = "USD"
    later_version: bool = False  # effective from the first day of next month (a price rise)

    @property
    def model(self) -> str:
        return Charge.Model.GRADUATED if self.tiers else Charge.Model.STANDARD


POSITIONS = {"platform-fee": 0, "seats": 1, "api-calls": 2, "tokens": 3}


def fee(price: str, **terms) -> ChargeSpec:
    return ChargeSpec("platform-fee", "Platform fee", "unit", unit_price=price, **terms)


def seats(price: str, **terms) -> ChargeSpec:
    return ChargeSpec("seats", "Seats", "seat", unit_price=price, quantity=None, **terms)


def calls(price: str, **terms) -> ChargeSpec:
    return ChargeSpec(
        "api-calls", "API calls", "call", metric="api_calls", unit_price=price, quantity=0, **terms
    )


def tokens(**terms) -> ChargeSpec:
    return ChargeSpec("tokens", "Tokens", "token", metric="tokens", quantity=0, **terms)


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    description: str
    default_seats: int
    usage_weight: float  # how much traffic a typical customer of this plan sends
    charges: tuple[ChargeSpec, ...]
    additional_currencies: str = ""
    trial_days: int = 0


PLANS = [
    PlanSpec(
        "starter",
        "Starter",
        "For teams shipping their first AI feature: shared capacity, email support, a 14-day "
        "free trial and 1,000 API calls a month included.",
        5,
        0.5,
        (
            fee("99", prorated=True),
            # The list price rises on the first day of next month: subscriptions that start
            # before keep 99 (their items snapshot it); quotes that start from then show 119.
            fee("119", prorated=True, later_version=True),
            seats("15", prorated=True),
            calls("0.002", free_units=1_000),
            tokens(unit_price="0.000004"),
        ),
        trial_days=14,
    ),
    PlanSpec(
        "growth",
        "Growth",
        "For products in production: higher rate limits, fine-tuning, business-hours support. "
        "Sold in USD and EUR.",
        10,
        1.0,
        (
            fee("499"),
            seats("25"),
            calls("0.0015"),
            tokens(tiers=((10 * M, "0.000004"), (100 * M, "0.000003"), (None, "0.000002"))),
            fee("459", currency="EUR"),
            seats("23", currency="EUR"),
            calls("0.0014", currency="EUR"),
            tokens(
                tiers=((10 * M, "0.0000037"), (100 * M, "0.0000028"), (None, "0.0000018")),
                currency="EUR",
            ),
        ),
        additional_currencies="EUR",
    ),
    PlanSpec(
        "enterprise",
        "Enterprise",
        "Dedicated capacity, SSO, audit logs, 99.9% SLA and a named support engineer; a minimum "
        "token commitment of 200 USD a month.",
        25,
        1.8,
        (
            fee("2500"),
            seats("40"),
            calls("0.001"),
            tokens(
                tiers=((10 * M, "0.000003"), (100 * M, "0.0000022"), (None, "0.0000015")),
                min_amount="200",
            ),
        ),
    ),
]


@dataclass(frozen=True)
class CustomerSpec:
    key: str  # cust_<key>
    name: str
    address: str
    tax_rate: str
    terms: int
    timezone: str
    pays: str  # prompt | on_time | late | partial | delinquent | never (no invoices)
    currency: str = "USD"

    @property
    def external_id(self) -> str:
        return f"cust_{self.key}"

    @property
    def billing_email(self) -> str:
        return f"ap@{self.key}.example"


CUSTOMERS = [
    CustomerSpec(
        "northwind",
        "Northwind Analytics, Inc.",
        "1200 Westlake Ave N, Suite 400\nSeattle, WA 98109\nUSA",
        "0",
        30,
        "America/Los_Angeles",
        "on_time",
    ),
    CustomerSpec(
        "lumen",
        "Lumen Health Systems",
        "75 Federal Street\nBoston, MA 02110\nUSA",
        "0",
        45,
        "America/New_York",
        "on_time",
    ),
    CustomerSpec(
        "brightpath",
        "BrightPath Learning",
        "500 W 2nd Street, Floor 19\nAustin, TX 78701\nUSA",
        "0",
        30,
        "America/Chicago",
        "prompt",
    ),
    CustomerSpec(
        "harborline",
        "Harborline Logistics Co.",
        "2200 Pier Avenue\nLong Beach, CA 90802\nUSA",
        "7.25",
        30,
        "America/Los_Angeles",
        "delinquent",
    ),
    CustomerSpec(
        "quillstone",
        "Quillstone Legal LLP",
        "1 Liberty Plaza, 35th Floor\nNew York, NY 10006\nUSA",
        "8.875",
        30,
        "America/New_York",
        "partial",
    ),
    CustomerSpec(
        "pinecrest",
        "Pinecrest Insurance Group",
        "280 Trumbull Street\nHartford, CT 06103\nUSA",
        "0",
        45,
        "America/New_York",
        "on_time",
    ),
    CustomerSpec(
        "vectorforge",
        "VectorForge Robotics",
        "2860 Zanker Road\nSan Jose, CA 95134\nUSA",
        "7.25",
        30,
        "America/Los_Angeles",
        "prompt",
    ),
    CustomerSpec(
        "meridian",
        "Meridian Retail Ltd",
        "14 Finsbury Square\nLondon EC2A 1BR\nUnited Kingdom",
        "20",
        30,
        "Europe/London",
        "on_time",
    ),
    CustomerSpec(
        "copperleaf",
        "Copperleaf Media",
        "55 Water Street\nBrooklyn, NY 11201\nUSA",
        "8.875",
        15,
        "America/New_York",
        "late",
    ),
    CustomerSpec(
        "atlas",
        "Atlas Mutual Bank",
        "401 S Tryon Street\nCharlotte, NC 28202\nUSA",
        "0",
        45,
        "America/New_York",
        "on_time",
    ),
    CustomerSpec(
        "fernhill",
        "Fernhill Games Studio",
        "8800 Sunset Boulevard\nLos Angeles, CA 90069\nUSA",
        "7.25",
        15,
        "America/Los_Angeles",
        "delinquent",
    ),
    CustomerSpec(
        "solace",
        "Solace Telehealth",
        "1600 Champa Street\nDenver, CO 80202\nUSA",
        "0",
        30,
        "America/Denver",
        "prompt",
    ),
    CustomerSpec(
        "kestrel",
        "Kestrel Security, Inc.",
        "1100 Wilson Boulevard\nArlington, VA 22209\nUSA",
        "0",
        30,
        "America/New_York",
        "on_time",
    ),
    CustomerSpec(
        "orbitra",
        "Orbitra Travel GmbH",
        "Friedrichstraße 68\n10117 Berlin\nGermany",
        "19",
        30,
        "Europe/Berlin",
        "on_time",
    ),
    CustomerSpec(
        "bluefin",
        "Bluefin Payments, Inc.",
        "201 Mission Street\nSan Francisco, CA 94105\nUSA",
        "7.25",
        15,
        "America/Los_Angeles",
        "prompt",
    ),
    CustomerSpec(
        "tidewater",
        "Tidewater Energy Partners",
        "1000 Louisiana Street\nHouston, TX 77002\nUSA",
        "0",
        45,
        "America/Chicago",
        "late",
    ),
    CustomerSpec(
        "greenfield",
        "Greenfield AgriTech",
        "400 Locust Street\nDes Moines, IA 50309\nUSA",
        "0",
        30,
        "America/Chicago",
        "on_time",
    ),
    CustomerSpec(
        "marigold",
        "Marigold Hospitality Group",
        "1450 Brickell Avenue\nMiami, FL 33131\nUSA",
        "0",
        30,
        "America/New_York",
        "never",
    ),
    CustomerSpec(
        "nimbus",
        "Nimbus Docs",
        "85 Broad Street\nNew York, NY 10004\nUSA",
        "8.875",
        15,
        "America/New_York",
        "never",
    ),
    CustomerSpec(
        "ravenwood",
        "Ravenwood Publishing",
        "25 St Stephen's Green\nDublin 2, D02 XF99\nIreland",
        "20",
        30,
        "Europe/Dublin",
        "never",
    ),
    # The first customers, signed 11-12 months ago (see QUOTES).
    CustomerSpec(
        "halcyon",
        "Halcyon Freight Systems",
        "600 Grant Street, Suite 2900\nPittsburgh, PA 15219\nUSA",
        "0",
        45,
        "America/New_York",
        "on_time",
    ),
    CustomerSpec(
        "cobalt",
        "Cobalt Ridge Capital",
        "101 Federal Street, 19th Floor\nBoston, MA 02110\nUSA",
        "0",
        30,
        "America/New_York",
        "prompt",
    ),
    CustomerSpec(
        "wren",
        "Wren & Pike Outfitters",
        "1001 SE Water Avenue\nPortland, OR 97214\nUSA",
        "0",
        30,
        "America/Los_Angeles",
        "on_time",
    ),
    CustomerSpec(
        "saltmarsh",
        "Saltmarsh Studios",
        "318 King Street\nCharleston, SC 29401\nUSA",
        "6",
        30,
        "America/New_York",
        "prompt",
    ),
    # Billed in euros (Growth is also sold in EUR), with their countries' VAT.
    CustomerSpec(
        "kranich",
        "Kranich Mobility GmbH",
        "Torstraße 49\n10119 Berlin\nGermany",
        "19",
        30,
        "Europe/Berlin",
        "on_time",
        currency="EUR",
    ),
    CustomerSpec(
        "sillon",
        "Sillon Analytique SAS",
        "12 Rue de la Chaussée d'Antin\n75009 Paris\nFrance",
        "20",
        30,
        "Europe/Paris",
        "prompt",
        currency="EUR",
    ),
]
PORTAL_CUSTOMER = "cust_northwind"

# Finance's approval policy: (name, kind, threshold, currency of an amount threshold).
APPROVAL_RULES = [
    ("Line discount above 20 %", "line_discount_above", "20", ""),
    ("Deal discount above 15 %", "total_discount_above", "15", ""),
    ("Large deal: TCV above $250,000", "tcv_above", "250000", "USD"),
    ("MRR below $300", "mrr_below", "300", "USD"),
    ("Payment terms beyond net 45", "payment_terms_above", "45", ""),
]


@dataclass(frozen=True)
class DealSpec:
    """A quote in flight today, built like a rep would: the plan's lines with negotiated terms
    (quantity, discount, estimate, a ramp of (months, quantity, price or "")), and typed extras
    (kind, description, price, discount)."""

    customer: str
    plan: str
    title: str
    subscription: str
    outcome: str  # draft, in_review (submitted, a rule applies) or sent
    start: int  # days from today (a renewal: from the end of the customer's subscription)
    term_months: int
    lines: dict[str, dict]
    extras: tuple[tuple[str, str, str, str], ...] = ()
    notes: str = ""
    renews: bool = False


DEALS = [
    DealSpec(
        "orbitra",
        "enterprise",
        "Orbitra: Enterprise expansion, 24 months",
        "sub_orbitra_enterprise_2y",
        Quote.Status.IN_REVIEW,  # 25 % off seats: above the 20 % line rule
        14,
        24,
        {
            "Seats": {
                "discount_percent": "25",
                "ramp": (((1, 12), "60", ""), ((13, 24), "90", "")),
            },
            "Tokens": {"estimated_quantity": "150000000"},
            "API calls": {"estimated_quantity": "2000000"},
        },
        extras=(("one_time", "Implementation and SSO setup", "15000", "20"),),
        notes="Seats ramp from 60 to 90 in the second year. Implementation within 6 weeks.",
    ),
    DealSpec(
        "northwind",
        "growth",
        "Northwind: renewal, 24 months",
        "sub_northwind_growth_renewal",
        Quote.Status.SENT,
        45,
        24,
        {
            "Seats": {
                "discount_percent": "10",
                "ramp": (((1, 12), "15", ""), ((13, 24), "20", "24")),
            },
            "Tokens": {"estimated_quantity": "60000000"},
            "API calls": {"estimated_quantity": "1500000"},
        },
        extras=(("credit", "Prepaid usage credits", "5000", "5"),),
        notes="Renewal of the Growth subscription; seats grow to 20 in the second year.",
        renews=True,
    ),
    DealSpec(
        "greenfield",
        "growth",
        "Greenfield: Growth, 12 months",
        "sub_greenfield_growth",
        Quote.Status.DRAFT,
        20,
        12,
        {"Seats": {"quantity": "8"}, "API calls": {"estimated_quantity": "400000"}},
        extras=(("one_time", "Onboarding workshop", "2500", ""),),
    ),
]


@dataclass(frozen=True)
class QuoteSpec:
    """A quote and its fate. Dates are days relative to the first seeding day (negative: past)."""

    customer: str  # CustomerSpec.key
    plan: str
    outcome: str  # Quote.Status value
    start: int  # subscription start (days from today)
    created: int  # days from today
    seats: int | None = None  # negotiated seat count
    prices: dict[str, str] = field(default_factory=dict)  # charge name -> negotiated unit price
    usage: float = 1.0  # traffic multiplier for the subscription
    tokens_per_call: int = 40_000  # median tokens per request
    decided: int | None = None  # days from today: declined on (declined quotes)
    valid_days: int = 30
    starts_at_new_price: bool = False  # start on the day the next price version takes effect
    # Prepaid credits granted on the subscription's start day: (metric code or None for money
    # in the subscription's currency, amount).
    credits: tuple[tuple[str | None, str], ...] = ()
    term_months: int = 12
    interval: int | None = None  # months per billing period (None: the plan's, monthly)

    @property
    def subscription_external_id(self) -> str:
        return f"sub_{self.customer}_{self.plan}"


ACCEPTED = Quote.Status.ACCEPTED
QUOTES = [
    # The first four customers, signed 11-12 months ago (their stories: AMENDMENTS, RENEWALS,
    # CREDIT_NOTES). Halcyon buys Enterprise billed yearly, up front (its usage in arrears at
    # the year's end); its term ends three days before today and was renewed.
    QuoteSpec(
        "halcyon",
        "enterprise",
        ACCEPTED,
        -368,
        -395,
        seats=30,
        prices={"Platform fee": "2300"},
        usage=0.25,
        tokens_per_call=120_000,
        interval=12,
    ),
    # (batch pipelines: fewer, longer requests, which keeps a year of their events quick to seed)
    QuoteSpec(
        "cobalt", "growth", ACCEPTED, -352, -370, seats=10, usage=0.25, tokens_per_call=90_000
    ),
    QuoteSpec("wren", "starter", ACCEPTED, -340, -352, seats=5, usage=0.2, tokens_per_call=80_000),
    QuoteSpec(
        "saltmarsh", "growth", ACCEPTED, -325, -338, seats=8, usage=0.25, tokens_per_call=90_000
    ),
    # 19 accepted quotes: subscriptions that started 3-4 months ago, as the company grew.
    QuoteSpec("northwind", "growth", ACCEPTED, -106, -124, seats=12, tokens_per_call=45_000),
    QuoteSpec(
        "lumen",
        "enterprise",
        ACCEPTED,
        -118,
        -140,
        seats=40,
        prices={"Platform fee": "2250", "Seats": "36"},
        usage=1.2,
        tokens_per_call=60_000,
    ),
    QuoteSpec("brightpath", "starter", ACCEPTED, -112, -126, seats=6, tokens_per_call=25_000),
    QuoteSpec("harborline", "growth", ACCEPTED, -121, -138, usage=0.8),
    QuoteSpec(
        "quillstone", "growth", ACCEPTED, -98, -115, seats=15, prices={"Seats": "22.50"}, usage=0.9
    ),
    QuoteSpec(
        "pinecrest",
        "enterprise",
        ACCEPTED,
        -115,
        -150,
        seats=30,
        tokens_per_call=55_000,
        valid_days=45,
    ),
    QuoteSpec(
        "vectorforge",
        "growth",
        ACCEPTED,
        -109,
        -123,
        usage=1.4,
        tokens_per_call=30_000,
        credits=(("tokens", "2000000"), (None, "100.00")),  # a launch pack, drawn down first
    ),
    QuoteSpec("meridian", "growth", ACCEPTED, -103, -120, seats=14),
    QuoteSpec("copperleaf", "starter", ACCEPTED, -100, -112, usage=1.3),
    QuoteSpec(
        "atlas",
        "enterprise",
        ACCEPTED,
        -122,
        -160,
        seats=60,
        prices={"Platform fee": "2000", "Seats": "34"},
        usage=1.5,
        tokens_per_call=70_000,
        valid_days=45,
    ),
    # A games studio: many short calls, past Starter's 1,000 included calls a month.
    QuoteSpec(
        "fernhill", "starter", ACCEPTED, -95, -104, seats=4, usage=3.5, tokens_per_call=12_000
    ),
    QuoteSpec("solace", "growth", ACCEPTED, -113, -129, tokens_per_call=35_000),
    QuoteSpec("kestrel", "growth", ACCEPTED, -96, -110, seats=20, prices={"Seats": "23"}),
    QuoteSpec("orbitra", "starter", ACCEPTED, -104, -118, seats=8),
    QuoteSpec(
        "bluefin",
        "enterprise",
        ACCEPTED,
        -93,
        -128,
        seats=35,
        prices={"Platform fee": "2400"},
        usage=1.1,
        tokens_per_call=50_000,
        valid_days=45,
    ),
    QuoteSpec("tidewater", "growth", ACCEPTED, -110, -127, seats=10, usage=0.7),
    QuoteSpec("greenfield", "starter", ACCEPTED, -119, -133, usage=0.6),
    QuoteSpec("kranich", "growth", ACCEPTED, -101, -117, seats=12, tokens_per_call=45_000),
    QuoteSpec("sillon", "growth", ACCEPTED, -97, -114, seats=8, prices={"Seats": "21"}, usage=0.8),
    # Declined, expired, sent and draft quotes.
    QuoteSpec("ravenwood", "enterprise", Quote.Status.DECLINED, -40, -75, decided=-52),
    QuoteSpec("pinecrest", "growth", Quote.Status.DECLINED, -125, -165, decided=-152),
    QuoteSpec("ravenwood", "growth", Quote.Status.EXPIRED, -15, -50, seats=8),
    QuoteSpec("tidewater", "enterprise", Quote.Status.EXPIRED, -60, -90, seats=25),
    QuoteSpec("marigold", "growth", Quote.Status.SENT, 10, -6, seats=18, prices={"Seats": "24"}),
    QuoteSpec("nimbus", "starter", Quote.Status.SENT, 5, -3),
    QuoteSpec("nimbus", "growth", Quote.Status.DRAFT, 5, -2, seats=10),
    QuoteSpec(
        "northwind",
        "enterprise",
        Quote.Status.DRAFT,
        20,
        -1,
        seats=25,
        prices={"Platform fee": "2250"},
    ),
    # Starts when Starter's new list price takes effect: its lines show that price.
    QuoteSpec("ravenwood", "starter", Quote.Status.DRAFT, 0, -1, seats=6, starts_at_new_price=True),
]


# Contract changes during the replay: (subscription, days from today, change). A seat change
# in the middle of a month (prorated on the next invoice) and a cancellation (a credit note for
# the unused time, a final invoice for the usage up to its date).
CONTRACT_CHANGES = [
    ("sub_kestrel_growth", -40, ("seats", "28", "Hired a second support team")),
    ("sub_meridian_growth", -25, ("cancel", "", "Budget cut: moving the team to a cheaper tool")),
]


# Amendments through a quote (subscription, days from today, new plan or None, new quantities,
# bill the change now, reason): signed and applied the same day, by the customer and sales.
#  - Halcyon rolls out to a second region half-way through its yearly term: 30 → 45 seats, the
#    rest of the year's extra seats invoiced at once (it is billed yearly).
#  - Cobalt outgrows Growth and moves to Enterprise (25 seats) mid-month: the unused Growth days
#    and the Enterprise days are prorated on its next invoice.
AMENDMENTS = [
    ("sub_halcyon_enterprise", -190, None, {"Seats": "45"}, True, "Rolled out to a second region"),
    (
        "sub_cobalt_growth",
        -160,
        "enterprise",
        {"Seats": "25"},
        False,
        "Outgrew Growth: dedicated capacity and SSO",
    ),
]

# Renewals: (subscription, days from today) on which the customer signs the renewal quote the
# daily renewal job drafted (RENEWAL_NOTICE_DAYS before the term's end). Halcyon renews for
# another year, billed yearly up front on the day its first term ends. (The job also drafts
# renewal quotes for the other first customers, whose terms end within 60 days of today.)
RENEWALS = [("sub_halcyon_enterprise", -20)]


@dataclass(frozen=True)
class CreditNoteSpec:
    """A credit note finance issues on `day` (days from today), on the subscription's latest
    paid invoice with a line named `line`: a `share` of that line (a credit by line), or an
    `amount` before tax with the reason (a credit by amount). The invoice is paid, so the credit
    goes to the customer's credit balance and their next invoice takes it at finalization."""

    subscription: str
    day: int
    line: str
    reason: str
    share: str | None = None
    amount: str | None = None


CREDIT_NOTES = [
    # A service incident: half of Wren's monthly platform fee (a fixed fee, billed in advance).
    CreditNoteSpec(
        "sub_wren_starter",
        -250,
        "Platform fee",
        "Service incident: the API was unavailable for 31 hours; half of the month's platform "
        "fee credited",
        share="0.5",
    ),
    # A metering fault: a fifth of Saltmarsh's tokens of a month (usage, billed in arrears).
    CreditNoteSpec(
        "sub_saltmarsh_growth",
        -200,
        "Tokens",
        "Metering fault: a client retry loop double-counted tokens; 20 % of the month's tokens "
        "credited",
        share="0.2",
    ),
    # Halcyon's SLA credit, an amount on its yearly invoice.
    CreditNoteSpec(
        "sub_halcyon_enterprise",
        -120,
        "Platform fee",
        "SLA credit: availability 99.6 % in the month, below the 99.9 % committed",
        amount="230.00",
    ),
]


# A month of collections, beyond the customers' usual habits (see collect_payments and
# collections): each happens once, at a date relative to today, and leaves the overdue figure
# as it was (none of them touches an invoice past due today).
#  - Solace's first payment in the last 55 days is rounded up to the next hundred: the rest goes
#    on account, and its next invoice takes it at finalization ("Credit balance applied").
#  - Meridian pays the invoice its cancellation credited at its full total: the difference goes
#    on account and is refunded by bank transfer a week later.
#  - Brightpath pays its first invoice of the last 20 days that is not yet due by ACH debit; the
#    bank returns it three days later, which reopens the invoice.
#  - Fernhill never pays its first (small, trial-month) invoice; finance writes it off 45 days
#    after its due date.
OVERPAYS = "cust_solace"
OVERPAID_SINCE = -55
PAYS_CREDITED_IN_FULL = "cust_meridian"
REFUND_AFTER_DAYS = 7
BOUNCES = "cust_brightpath"
BOUNCED_SINCE = -20
RETURNED_AFTER_DAYS = 3
RETURN_REASON = "Returned by the bank: insufficient funds (ACH return R01)"
WRITES_OFF = "cust_fernhill"
WRITE_OFF_AFTER_DAYS = 45
WRITE_OFF_REASON = "Uncollectible: the customer stopped answering after its trial month"


# ----------------------------------------------------------------------------------------------
# Time
# ----------------------------------------------------------------------------------------------


@contextmanager
def simulated_clock(moment: dt.datetime) -> Iterator[None]:
    """Point core.clock (the one place services read the time) at a moment of the replay."""
    with (
        mock.patch.object(clock, "now", return_value=moment),
        mock.patch.object(clock, "today", return_value=moment.date()),
    ):
        yield


@contextmanager
def quiet_logger(name: str, quiet: bool) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


# ----------------------------------------------------------------------------------------------
# Usage
# ----------------------------------------------------------------------------------------------

ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/rerank"]
MODELS = ["tess-large-2", "tess-mini-2", "tess-embed-3"]
REFERENCE_DAYS = 100


def _traffic(age_days: int, day: dt.date) -> float:
    """Relative daily traffic: usage triples over the first hundred days, then grows slowly
    up to 3.5 times at 125 days (the first customers' older months stay light); weekends are
    quiet."""
    growth = 1.0 + min(age_days, 125) / 50
    return growth * (1.0 if day.weekday() < 5 else 0.45)


def _calls_per_unit(events_per_subscription: int) -> float:
    """Calls per unit of traffic so that a typical subscription sends the events asked for
    over REFERENCE_DAYS (each call is two events: api_calls and tokens)."""
    reference = dt.date(2026, 1, 5)
    total = sum(_traffic(age, reference + dt.timedelta(days=age)) for age in range(REFERENCE_DAYS))
    return events_per_subscription / 2 / total


def usage_events(
    subscription: Subscription, spec: QuoteSpec, weight: float, day: dt.date, per_unit: float
) -> list[dict]:
    """The events of one subscription on one day; the same input always gives the same events."""
    if day < subscription.start_date or day >= subscription.end_date:
        return []
    rng = random.Random(f"{subscription.external_id}:{day.isoformat()}")
    age = (day - subscription.start_date).days
    mean = per_unit * weight * spec.usage * _traffic(age, day)
    calls = max(int(round(mean * rng.uniform(0.8, 1.2))), 0)
    midnight = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    events = []
    for n in range(calls):
        stamp = (midnight + dt.timedelta(seconds=rng.randrange(86_400))).isoformat()
        model = rng.choice(MODELS)
        tokens = max(int(rng.lognormvariate(0, 0.7) * spec.tokens_per_call), 1)
        txn = f"{subscription.external_id}-{day:%Y%m%d}-{n:05d}"
        common = {"external_subscription_id": subscription.external_id, "timestamp": stamp}
        events.append(
            {
                **common,
                "transaction_id": f"{txn}-call",
                "code": "api_calls",
                "properties": {"endpoint": rng.choice(ENDPOINTS), "model": model},
            }
        )
        events.append(
            {
                **common,
                "transaction_id": f"{txn}-tok",
                "code": "tokens",
                "properties": {"tokens": tokens, "model": model},
            }
        )
    return events


# ----------------------------------------------------------------------------------------------
# Payments
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentPlan:
    received_on: dt.date
    share: Decimal  # of the amount due
    method: str
    reference: str


def payment_plan(invoice: Invoice, behaviour: str) -> PaymentPlan | None:
    """When (and how much of) an invoice the customer pays; deterministic per invoice."""
    rng = random.Random(f"{invoice.subscription.external_id}:{invoice.billing_date}")
    terms = invoice.customer.payment_terms_days
    first = not Invoice.objects.filter(
        subscription=invoice.subscription, billing_date__lt=invoice.billing_date
    ).exists()
    share = Decimal(1)
    if behaviour == "prompt":
        delay, method = rng.randint(2, 9), Payment.Method.CARD
    elif behaviour == "on_time":
        delay, method = rng.randint(max(terms - 8, 1), terms - 1), Payment.Method.BANK_TRANSFER
    elif behaviour == "late":
        delay, method = rng.randint(terms + 5, terms + 20), Payment.Method.CHECK
    elif behaviour == "partial":
        delay, method = rng.randint(terms - 5, terms), Payment.Method.BANK_TRANSFER
        share = Decimal("1") if first else Decimal("0.5")
    elif behaviour == "delinquent" and first:
        delay, method = terms + rng.randint(10, 25), Payment.Method.BANK_TRANSFER
    else:
        return None
    prefix = {"card": "ch_demo_", "check": "CHK ", "bank_transfer": "ACH "}[method]
    return PaymentPlan(
        received_on=invoice.issue_date + dt.timedelta(days=delay),
        share=share,
        method=method,
        reference=f"{prefix}{invoice.number}",
    )


def open_amounts(invoices) -> list[tuple[str, Decimal]]:
    """(currency, amount due) of each invoice."""
    return [(str(i.currency), invoice_amount_due(i)) for i in invoices]


def by_currency(amounts) -> str:
    """'1,234.50 USD + 99.00 EUR' from (currency, amount) pairs (USD first)."""
    totals: dict[str, Decimal] = {}
    for currency, amount in amounts:
        totals[str(currency)] = totals.get(str(currency), Decimal(0)) + (amount or 0)
    if not totals:
        return "0.00 USD"
    order = sorted(totals, key=lambda c: (c != "USD", c))
    return " + ".join(f"{totals[c]:,.2f} {c}" for c in order)


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


class Command(BaseCommand):
    help = (
        "Seed a demo company (Tessellate AI and ~25 customers) through the real services: "
        "catalog, quotes, subscriptions, a year of usage, billing, amendments, renewals, credit "
        "notes, payments, revenue and closed months. "
        "Idempotent: a second run changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--events-per-subscription",
            type=int,
            default=DEFAULT_EVENTS_PER_SUBSCRIPTION,
            help="Usage events a typical subscription sends over 100 days "
            f"(default {DEFAULT_EVENTS_PER_SUBSCRIPTION}; use a small number for quick tests).",
        )

    def handle(self, *args, events_per_subscription: int, **options):
        if events_per_subscription < 0:
            raise CommandError("--events-per-subscription cannot be negative.")
        self.verbosity = options.get("verbosity", 1)
        self.real_now = clock.now()
        self.today = self.real_now.date()
        # When a later price version takes effect (if this run makes it): next month's first day.
        self.next_price_date = add_months(self.today.replace(day=1), 1)
        self.warnings: dict[str, None] = {}  # an ordered set
        self.per_unit = _calls_per_unit(events_per_subscription)
        self.created = Counter()
        self.payment_plans: dict[int, PaymentPlan | None] = {}  # by invoice id
        self.events_received = self.events_created = 0

        before = self.snapshot()
        # Historical invoices are not emailed to the (fictional) customers, and the billing log
        # line of every replayed day is shown only with --verbosity 2.
        with (
            override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"),
            quiet_logger("invoicing.services", self.verbosity < 2),
            quiet_logger("quotes.renewals", self.verbosity < 2),
            transaction.atomic(),
        ):
            self.seed_users()
            self.seed_catalog()
            self.seed_customers()
            self.seed_quotes()
            self.replay_history()
            self.close_periods()
            self.seed_portal_membership()
            self.seed_deals()
        raw_key = self.seed_api_key()
        after = self.snapshot()
        self.report(before, after, raw_key)

    # -- helpers --------------------------------------------------------------------------------

    def moment(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        """A time of a replayed day, never later than the real now."""
        return min(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC), self.real_now)

    def day(self, offset: int) -> dt.date:
        return self.today + dt.timedelta(days=offset)

    def log(self, message: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(message)

    def warn(self, message: str) -> None:
        self.warnings[message] = None

    # -- users, catalog, customers -------------------------------------------------------------

    def seed_users(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser(
                "admin", "admin@tessellate.example", "admin-demo", first_name="Ada"
            )
            self.created["users"] += 1
        for username, password, group_name, first, last in [
            ("sales", "sales-demo", "Sales", "Sam", "Rivera"),
            ("finance", "finance-demo", "Finance", "Fiona", "Chen"),
            ("operator", "operator-demo", "Operator", "Omar", "Haddad"),
        ]:
            try:
                group = Group.objects.get(name=group_name)
            except Group.DoesNotExist as exc:
                raise CommandError(
                    f"The group {group_name!r} is missing: run `manage.py migrate` first "
                    "(a core data migration creates the roles)."
                ) from exc
            if user_model.objects.filter(username=username).exists():
                continue
            user = user_model.objects.create_user(
                username,
                f"{username}@tessellate.example",
                password,
                first_name=first,
                last_name=last,
                is_staff=True,
            )
            user.groups.add(group)
            self.created["users"] += 1

    def seed_catalog(self) -> None:
        """The catalog has no services: models are validated (full_clean) and saved, once.

        A charge is keyed by (plan, key, currency, first or later version); a later version is
        made once, effective from the first day of the month after the first seeding.
        """
        metrics = {}
        for spec in METRICS:
            metric = BillableMetric.objects.filter(code=spec["code"]).first()
            if metric is None:
                metric = BillableMetric(**spec)
                metric.full_clean()
                metric.save()
                self.created["metrics"] += 1
            metrics[metric.code] = metric
        for spec in PLANS:
            plan = Plan.objects.filter(code=spec.code).first()
            if plan is None:
                plan = Plan(
                    code=spec.code,
                    name=spec.name,
                    description=spec.description,
                    currency="USD",
                    additional_currencies=spec.additional_currencies,
                    billing_interval_months=Plan.Interval.MONTH,
                    trial_days=spec.trial_days,
                )
                plan.full_clean()
                plan.save()
                self.created["plans"] += 1
            for charge_spec in spec.charges:
                self.seed_charge(plan, spec, charge_spec, metrics)

    def seed_charge(
        self, plan: Plan, plan_spec: PlanSpec, spec: ChargeSpec, metrics: dict
    ) -> Charge | None:
        if spec.currency not in plan.currencies:
            # A demo database seeded before the plan was sold in this currency.
            self.warn(
                f"Plan {plan.code!r} is not sold in {spec.currency}: its {spec.currency} prices "
                "are skipped (reset the demo database to see them)."
            )
            return None
        versions = plan.charges.filter(key=spec.key, currency=spec.currency)
        if versions.filter(effective_from__isnull=not spec.later_version).exists():
            return None
        quantity = plan_spec.default_seats if spec.quantity is None else spec.quantity
        charge = Charge(
            plan=plan,
            key=spec.key,
            name=spec.name,
            metric=metrics[spec.metric] if spec.metric else None,
            currency=spec.currency,
            effective_from=self.next_price_date if spec.later_version else None,
            charge_model=spec.model,
            billing_timing=Charge.Timing.IN_ARREARS if spec.metric else Charge.Timing.IN_ADVANCE,
            prorated=spec.prorated,
            unit_price=Decimal(spec.unit_price),
            free_units=Decimal(spec.free_units),
            min_amount=None if spec.min_amount is None else Decimal(spec.min_amount),
            unit_name=spec.unit,
            default_quantity=Decimal(quantity),
            position=POSITIONS[spec.key],
        )
        charge.full_clean()
        tiers, lower = [], Decimal(0)
        for up_to, price in spec.tiers:
            upper = None if up_to is None else Decimal(up_to)
            tiers.append(
                ChargeTier(from_units=lower, up_to=upper, unit_price=Decimal(price), flat_fee=0)
            )
            lower = upper if upper is not None else lower
        problems = rating.tier_problems([t.as_dict() for t in tiers]) if tiers else []
        if problems:
            raise CommandError(f"{plan.code} {spec.key} tiers: {' '.join(problems)}")
        charge.save()
        for tier in tiers:
            tier.charge = charge
            tier.full_clean()
            tier.save()
        self.created["charges"] += 1
        return charge

    def seed_customers(self) -> None:
        """Customers have no services either; each is created once, keyed by its external id."""
        first_quote = {}
        for q in QUOTES:
            first_quote[q.customer] = min(first_quote.get(q.customer, 0), q.created)
        for spec in CUSTOMERS:
            if Customer.objects.filter(external_id=spec.external_id).exists():
                continue
            customer = Customer(
                external_id=spec.external_id,
                name=spec.name,
                currency=spec.currency,
                billing_email=spec.billing_email,
                address=spec.address,
                payment_terms_days=spec.terms,
                tax_rate=Decimal(spec.tax_rate),
                timezone=spec.timezone,
            )
            customer.full_clean()
            customer.save()
            # Backdate to when sales first met them (created_at is auto_now_add).
            became = self.moment(self.day(first_quote.get(spec.key, 0) - 7), 16)
            Customer.objects.filter(pk=customer.pk).update(created_at=became)
            self.created["customers"] += 1

    # -- quotes --------------------------------------------------------------------------------

    def seed_quotes(self) -> None:
        """Draft every quote on its creation day (catalog prices, then the negotiated terms)."""
        sales = get_user_model().objects.get(username="sales")
        plans = {p.code: p for p in Plan.objects.all()}
        for spec in QUOTES:
            key = spec.subscription_external_id
            if Quote.objects.filter(subscription_external_id=key).exists():
                continue
            customer = Customer.objects.get(external_id=f"cust_{spec.customer}")
            plan = plans[spec.plan]
            if str(customer.currency) not in plan.currencies:
                self.warn(
                    f"Plan {plan.code!r} is not sold in {customer.currency}: the quote for "
                    f"{customer.name} is skipped (reset the demo database to see it)."
                )
                continue
            created = self.day(spec.created)
            start = self.next_price_date if spec.starts_at_new_price else self.day(spec.start)
            billed = ", billed yearly" if spec.interval == 12 else ""
            quote = Quote.objects.create(
                customer=customer,
                plan=plan,
                title=f"{customer.name}: {plan.name}, {spec.term_months} months{billed}",
                start_date=start,
                term_months=spec.term_months,
                billing_interval_months=spec.interval,
                valid_until=created + dt.timedelta(days=spec.valid_days),
                subscription_external_id=spec.subscription_external_id,
                owner=sales,
            )
            Quote.objects.filter(pk=quote.pk).update(created_at=self.moment(created, 15))
            quote_populate_lines(quote=quote)
            for line in quote.lines.all():
                changed = False
                if line.description == "Seats" and spec.seats is not None:
                    line.quantity, changed = Decimal(spec.seats), True
                if line.description in spec.prices:
                    line.unit_price, changed = Decimal(spec.prices[line.description]), True
                if changed:
                    line.full_clean()
                    line.save()
            self.created["quotes"] += 1

    def quote_events(self, day: dt.date) -> None:
        """Send, accept or decline the quotes whose day has come (each exactly once); the daily
        job expires those whose validity has passed."""
        with simulated_clock(self.moment(day, 0, 30)):
            quotes_expire_overdue(today=day)
        undecided = {
            q.subscription_external_id: q
            for q in Quote.objects.filter(
                subscription_external_id__in=[s.subscription_external_id for s in QUOTES],
                status__in=Quote.OPEN,
            )
        }
        sales = get_user_model().objects.get(username="sales")
        for spec in QUOTES:
            quote = undecided.get(spec.subscription_external_id)
            if quote is None or spec.outcome == Quote.Status.DRAFT:
                continue
            sent_on = quote.created_at.date() + dt.timedelta(days=2)
            if spec.outcome == ACCEPTED:
                decided_on = quote.start_date - dt.timedelta(days=3)
            elif spec.outcome == Quote.Status.DECLINED:
                decided_on = self.day(spec.decided)
            else:
                decided_on = None  # left alone: sent, draft, or expired by the daily job
            if quote.status == Quote.Status.DRAFT and min(sent_on, decided_on or sent_on) <= day:
                with simulated_clock(self.moment(min(sent_on, decided_on or sent_on), 11)):
                    quote = quote_submit(quote=quote, by=sales)  # no rule applies: approved
                    quote = quote_mark_sent(quote=quote, by=sales, to=quote.customer.billing_email)
            if decided_on is None or decided_on > day or quote.status != Quote.Status.SENT:
                continue
            with simulated_clock(self.moment(decided_on, 10)):
                if spec.outcome == ACCEPTED:
                    quote_accept(quote=quote)
                else:
                    quote_decline(quote=quote)
            self.log(f"{decided_on}: quote {quote.number} {spec.outcome}")

    # -- the replay ----------------------------------------------------------------------------

    def replay_history(self) -> None:
        first_day = min(self.day(q.created) for q in QUOTES)
        specs = {q.subscription_external_id: q for q in QUOTES if q.outcome == ACCEPTED}
        weights = {p.code: p.usage_weight for p in PLANS}
        behaviour = {c.external_id: c.pays for c in CUSTOMERS}
        credited = {key: spec for key, spec in specs.items() if spec.credits}
        for day in days(first_day, self.today):
            done = sum(self.created.values())  # what the seed did before this day
            self.quote_events(day)
            self.grant_credits(day, credited)
            self.change_contracts(day)
            self.amend(day)
            # The daily renewal job (drafts renewal quotes RENEWAL_NOTICE_DAYS ahead), then the
            # customers who sign theirs.
            with simulated_clock(self.moment(day, 0, 45)):
                drafted = renewals_run(today=day).created
            if drafted:  # (created_at is the real time of the insert: the replayed day's)
                Quote.objects.filter(kind=Quote.Kind.RENEWAL, created_at__gte=self.real_now).update(
                    created_at=self.moment(day, 0, 45)
                )
            self.renew(day)
            billing_days = self.billing_days()
            subscriptions = list(
                Subscription.objects.filter(external_id__in=specs, start_date__lt=day)
                .exclude(canceled_on__lt=day)
                .select_related("plan")
            )
            # Yesterday's usage arrives just after midnight, before the billing run.
            yesterday = day - dt.timedelta(days=1)
            events = []
            for sub in subscriptions:
                spec = specs[sub.external_id]
                # (the traffic of the plan it was sold: the same events after an upgrade)
                events += usage_events(sub, spec, weights[spec.plan], yesterday, self.per_unit)
            with simulated_clock(self.moment(day, 0, 5)):
                for start in range(0, len(events), MAX_BATCH):
                    result = events_ingest(raw_events=events[start : start + MAX_BATCH])
                    self.events_received += result.received
                    self.events_created += result.created
            made = []
            if day in billing_days:  # billing_run on any other day would find nothing due
                with simulated_clock(self.moment(day, 1)):
                    made = billing_run(today=day).invoices
            for invoice in made:
                self.log(f"{day}: invoice {invoice.number} {invoice.total} {invoice.customer}")
            self.issue_credit_notes(day)
            with simulated_clock(self.moment(day, 2)):
                # The revenue job as beat runs it: contracts (new subscriptions, changes,
                # renewals, credit notes), the recognition of the month that is over (usage not
                # invoiced by then accrued), the journal.
                self.created["revenue postings"] += revrec_sync(today=day)
            self.collect_payments(day, behaviour)
            self.collections(day)
            # The journal job, after the day's billing and collections (beat runs it with
            # revrec_sync; here at the day's end so the day's payments are in it too). On a
            # day the seed made no document (no invoice, payment, credit note, contract change,
            # refund…) it would find nothing to post: skipped, to keep a year of replay quick.
            if made or sum(self.created.values()) != done or day == self.today:
                with simulated_clock(self.moment(day, 23, 30)):
                    self.created["journal entries"] += journal_sync(today=day)

    def amend(self, day: dt.date) -> None:
        """AMENDMENTS due on `day`: sales drafts the amendment quote (the contract in force),
        changes the plan or quantities, sends it, and the customer signs it (once: a subscription
        with an amendment quote is left as it is)."""
        due = [a for a in AMENDMENTS if self.day(a[1]) == day]
        if not due:
            return
        sales = get_user_model().objects.get(username="sales")
        plans = {p.code: p for p in Plan.objects.all()}
        for external_id, _, plan, quantities, now, reason in due:
            sub = Subscription.objects.filter(external_id=external_id).first()
            if sub is None:
                continue
            if Quote.objects.filter(kind=Quote.Kind.AMENDMENT, contract=sub).exists():
                continue
            with simulated_clock(self.moment(day, 9)):
                quote = quote_amendment_create(subscription=sub, by=sales, effective_date=day)
                Quote.objects.filter(pk=quote.pk).update(created_at=self.moment(day, 9))
                quote.notes, quote.invoice_now = reason, now
                if plan:
                    quote.plan = plans[plan]
                    quote.title = f"{sub.customer.name}: upgrade to {quote.plan.name}"
                quote.save(update_fields=["notes", "invoice_now", "plan", "title"])
                if plan:
                    amendment_populate_lines(quote=quote)
                for line in quote.lines.filter(description__in=quantities):
                    line.quantity = Decimal(quantities[line.description])
                    line.full_clean()
                    line.save()
                quote = quote_submit(quote=quote, by=sales)
                quote = quote_mark_sent(quote=quote, by=sales, to=sub.customer.billing_email)
            with simulated_clock(self.moment(day, 16)):
                quote_accept(quote=quote, name="Jordan Blake", title="Head of Platform")
            self.created["amendments"] += 1
            self.log(f"{day}: amendment {quote.number} of {external_id}")

    def renew(self, day: dt.date) -> None:
        """RENEWALS due on `day`: the customer signs the renewal quote the daily job drafted."""
        due = [external_id for external_id, offset in RENEWALS if self.day(offset) == day]
        if not due:
            return
        sales = get_user_model().objects.get(username="sales")
        for external_id in due:
            sub = Subscription.objects.filter(external_id=external_id).first()
            if sub is None:
                continue
            quote = renewal_quote_of(sub)
            if quote is None or quote.status == Quote.Status.ACCEPTED:
                continue
            with simulated_clock(self.moment(day, 10)):
                if quote.status == Quote.Status.DRAFT:
                    quote = quote_submit(quote=quote, by=sales)
                if quote.status == Quote.Status.APPROVED:
                    quote = quote_mark_sent(quote=quote, by=sales, to=sub.customer.billing_email)
            with simulated_clock(self.moment(day, 15)):
                quote_accept(quote=quote, name="Dana Whitfield", title="VP Operations")
            self.created["renewals"] += 1
            self.log(f"{day}: renewal {quote.number} of {external_id}")

    def issue_credit_notes(self, day: dt.date) -> None:
        """CREDIT_NOTES due on `day`, by finance (once: a note with the same reason on the
        subscription's invoices is not issued again)."""
        due = [c for c in CREDIT_NOTES if self.day(c.day) == day]
        if not due:
            return
        finance = get_user_model().objects.get(username="finance")
        for spec in due:
            if CreditNote.objects.filter(
                invoice__subscription__external_id=spec.subscription, reason=spec.reason
            ).exists():
                continue
            line = (
                InvoiceLine.objects.filter(
                    invoice__subscription__external_id=spec.subscription,
                    invoice__status=Invoice.Status.PAID,
                    invoice__issue_date__lte=day,
                    description__startswith=spec.line,
                    amount__gt=0,
                )
                .select_related("invoice")
                .order_by("-invoice__issue_date", "-invoice_id")
                .first()
            )
            if line is None:
                self.warn(f"No invoice of {spec.subscription} to credit on {day}: skipped.")
                continue
            invoice = line.invoice
            if spec.share is not None:
                credit = round_money(line.amount * Decimal(spec.share), str(invoice.currency))
                terms = {"lines": {line.pk: credit}}
            else:
                terms = {"amount": Decimal(spec.amount)}
            with simulated_clock(self.moment(day, 11)):
                note = credit_note_issue(
                    invoice=invoice, reason=spec.reason, issued_by=finance, **terms
                )
            self.created["credit notes"] += 1
            self.log(f"{day}: credit note {note.number} {note.total} on {invoice.number}")

    def close_periods(self) -> None:
        """Finance closes the months of the year, in order, each on the 5th of the next month:
        it reviews the unapplied cash, then closes (the checklist must pass). Every month up to
        the one before last: last month stays open, for the month-end close walkthrough."""
        finance = get_user_model().objects.get(username="finance")
        last_open = add_months(self.today.replace(day=1), -1)
        periods = AccountingPeriod.objects.filter(start__lt=last_open).order_by("start")
        for period in periods:
            if period.status == AccountingPeriod.Status.CLOSED:
                continue
            with simulated_clock(self.moment(period.end + dt.timedelta(days=4), 17)):
                if period.cash_reviewed_at is None:
                    period = period_cash_review(period=period, by=finance)
                period_close(period=period, by=finance)
            self.created["closed periods"] += 1
            self.log(f"{period.start:%b %Y} closed")

    def change_contracts(self, day: dt.date) -> None:
        """CONTRACT_CHANGES due on `day`, by finance, in the morning (once: a subscription that
        already changed is left as it is)."""
        due = [c for c in CONTRACT_CHANGES if self.day(c[1]) == day]
        if not due:
            return
        finance = get_user_model().objects.get(username="finance")
        for external_id, _, (kind, value, reason) in due:
            sub = Subscription.objects.filter(external_id=external_id).first()
            if sub is None or sub.changes.exists():
                continue
            with simulated_clock(self.moment(day, 0, 30)):
                if kind == "seats":
                    seats = next(i for i in items_in_force(sub, day) if i.name == "Seats")
                    subscription_set_quantity(
                        subscription=sub,
                        item=seats,
                        quantity=Decimal(value),
                        effective_date=day,
                        by=finance,
                        source="admin",
                        reason=reason,
                    )
                else:
                    subscription_cancel(
                        subscription=sub,
                        reason=reason,
                        effective_date=day,  # mid-period: the unused time is credited
                        by=finance,
                        source="admin",
                    )
            self.created["contract changes"] += 1
            self.log(f"{day}: {kind} {external_id}")

    def grant_credits(self, day: dt.date, specs: dict[str, QuoteSpec]) -> None:
        """Prepaid credits bought with the contract, granted on the subscription's start day
        (once: not again, and not to a subscription already billed before this seed knew of
        them)."""
        for sub in Subscription.objects.filter(external_id__in=specs, start_date=day):
            if sub.prepaid_credits.exists() or sub.invoices.exists():
                continue
            metrics = {m.code: m for m in BillableMetric.objects.all()}
            with simulated_clock(self.moment(day, 0, 1)):
                for code, amount in specs[sub.external_id].credits:
                    prepaid_credit_grant(
                        subscription=sub,
                        amount=Decimal(amount),
                        metric=metrics[code] if code else None,
                        note="Launch pack bought with the contract",
                    )
                    self.created["prepaid credits"] += 1
            self.log(f"{day}: prepaid credits for {sub.external_id}")

    def billing_days(self) -> set[dt.date]:
        """Every billing date of the schedules (a period's end, and the day its billing starts:
        its start, or the end of a trial), and the days of the contract changes invoiced at
        once: the days on which billing_run has work."""
        bounds = BillingPeriod.objects.values_list("billed_from", "end_date")
        now = SubscriptionChange.objects.filter(invoice_now=True).values_list("at", flat=True)
        return {d for pair in bounds for d in pair} | {at.date() for at in now}

    def collect_payments(self, day: dt.date, behaviour: dict[str, str]) -> None:
        open_invoices = Invoice.objects.filter(
            status=Invoice.Status.FINALIZED, issue_date__lte=day
        ).select_related("customer", "subscription")
        for invoice in open_invoices.order_by("issue_date", "number"):
            if invoice.pk not in self.payment_plans:
                behaves = behaviour.get(invoice.customer.external_id, "never")
                if invoice.customer.external_id == WRITES_OFF:
                    behaves = "never"  # its first invoice is written off (collections)
                self.payment_plans[invoice.pk] = payment_plan(invoice, behaves)
            plan = self.payment_plans[invoice.pk]
            if plan is None or plan.received_on > day:
                continue
            # (a returned ACH debit of BOUNCES is not paid again by the card the plan says)
            references = [plan.reference, f"ACH {invoice.number}"]
            paid = Payment.objects.filter(customer=invoice.customer, reference__in=references)
            if paid.exists():
                continue
            amount = round_money(invoice_amount_due(invoice) * plan.share, invoice.currency)
            paid, method, reference = self.collected(invoice, plan, amount)
            with simulated_clock(self.moment(plan.received_on, 14)):
                payment_record(
                    customer=invoice.customer,
                    amount=paid,
                    currency=invoice.currency,
                    received_on=plan.received_on,
                    method=method,
                    reference=reference,
                    allocations={invoice: amount},  # the rest, if any, goes on account
                )
            self.created["payments"] += 1
            self.log(f"{plan.received_on}: payment {reference} {paid}")

    def collected(
        self, invoice: Invoice, plan: PaymentPlan, amount: Decimal
    ) -> tuple[Decimal, str, str]:
        """(amount received, method, reference) of a planned payment: the plan's, except for the
        month of collections described at OVERPAYS."""
        customer = invoice.customer
        key = customer.external_id
        received = Payment.objects.filter(customer=customer)
        since = self.day(OVERPAID_SINCE)
        if (
            key == OVERPAYS
            and plan.received_on >= since
            and not received.filter(received_on__gte=since).exists()
        ):
            rounded = (amount // 100 + 1) * 100
            return round_money(rounded, invoice.currency), plan.method, plan.reference
        if key == PAYS_CREDITED_IN_FULL and invoice.credited_amount > 0:
            return round_money(invoice.total, invoice.currency), plan.method, plan.reference
        if (
            key == BOUNCES
            and plan.received_on >= self.day(BOUNCED_SINCE)
            and invoice.due_date > self.today
            and not received.filter(received_on__gte=self.day(BOUNCED_SINCE)).exists()
        ):
            return amount, Payment.Method.BANK_TRANSFER, f"ACH {invoice.number}"
        return amount, plan.method, plan.reference

    def collections(self, day: dt.date) -> None:
        """The month of collections' events due on `day` (OVERPAYS): a returned ACH debit, a
        refund of a credit balance, a write-off. Each once: what was done is not found again."""
        finance = get_user_model().objects.get(username="finance")
        returned_on = day - dt.timedelta(days=RETURNED_AFTER_DAYS)
        for payment in Payment.objects.filter(
            customer__external_id=BOUNCES,
            method=Payment.Method.BANK_TRANSFER,
            reference__startswith="ACH ",
            received_on=returned_on,
            reversed_on=None,
        ):
            with simulated_clock(self.moment(day, 10)):
                payment_reverse(payment=payment, reason=RETURN_REASON, on=day, by=finance)
            self.created["returned payments"] += 1
            self.log(f"{day}: payment {payment.reference} returned")
        refund_due = day - dt.timedelta(days=REFUND_AFTER_DAYS)
        for customer in Customer.objects.filter(
            external_id=PAYS_CREDITED_IN_FULL, payments__received_on=refund_due
        ):
            balance = credit_balance(customer)
            if balance <= 0 or customer.refunds.exists():
                continue
            with simulated_clock(self.moment(day, 11)):
                refund_record(
                    customer=customer,
                    amount=balance,
                    refunded_on=day,
                    reference=f"Refund {customer.name}",
                    reason="Paid in full an invoice its cancellation had credited",
                    by=finance,
                )
            self.created["refunds"] += 1
            self.log(f"{day}: refund {balance} to {customer}")
        first = (
            Invoice.objects.filter(customer__external_id=WRITES_OFF)
            .exclude(status=Invoice.Status.DRAFT)
            .order_by("billing_date", "id")
            .first()
        )
        if (
            first is not None
            and first.status == Invoice.Status.FINALIZED
            and first.due_date + dt.timedelta(days=WRITE_OFF_AFTER_DAYS) == day
        ):
            with simulated_clock(self.moment(day, 15)):
                invoice_write_off(invoice=first, reason=WRITE_OFF_REASON, on=day, by=finance)
            self.created["write-offs"] += 1
            self.log(f"{day}: invoice {first.number} written off")

    # -- today's deals: finance's approval rules, a deal in review, one sent to the portal -----

    def seed_deals(self) -> None:
        """Finance's approval policy and three deals in flight today (each made once): an
        enterprise expansion with a ramp and a deep seat discount waiting in the approval queue,
        Northwind's two-year renewal approved and sent (the portal customer can accept it), and
        a draft the rep is still building."""
        for name, kind, threshold, currency in APPROVAL_RULES:
            ApprovalRule.objects.get_or_create(
                name=name,
                defaults={"kind": kind, "threshold": Decimal(threshold), "currency": currency},
            )
        sales = get_user_model().objects.get(username="sales")
        plans = {p.code: p for p in Plan.objects.all()}
        for deal in DEALS:
            if Quote.objects.filter(subscription_external_id=deal.subscription).exists():
                continue
            customer = Customer.objects.get(external_id=f"cust_{deal.customer}")
            start = self.day(deal.start)
            if deal.renews:
                current = customer.subscriptions.order_by("-start_date").first()
                start = current.end_date if current else start
            quote = Quote.objects.create(
                customer=customer,
                plan=plans[deal.plan],
                title=deal.title,
                owner=sales,
                start_date=start,
                term_months=deal.term_months,
                valid_until=self.day(30),
                notes=deal.notes,
                subscription_external_id=deal.subscription,
            )
            quote_populate_lines(quote=quote)
            for line in quote.lines.select_related("charge"):
                terms = deal.lines.get(line.description)
                if terms is None:
                    continue
                for field_name in ("quantity", "discount_percent", "estimated_quantity"):
                    if field_name in terms:
                        setattr(line, field_name, Decimal(terms[field_name]))
                if terms.get("ramp"):  # a ramped line's quantity is its first phase's
                    line.quantity = Decimal(terms["ramp"][0][1])
                line.full_clean()
                line.save()
                for months, quantity, price in terms.get("ramp", ()):
                    QuoteLinePhase.objects.create(
                        line=line,
                        start_month=months[0],
                        end_month=months[1],
                        quantity=Decimal(quantity),
                        unit_price=Decimal(price) if price else None,
                    )
            for position, (kind, description, price, discount) in enumerate(deal.extras, 50):
                extra = QuoteLine(
                    quote=quote,
                    kind=kind,
                    description=description,
                    quantity=Decimal(1),
                    unit_price=Decimal(price),
                    discount_percent=Decimal(discount) if discount else None,
                    position=position,
                )
                extra.full_clean()
                extra.save()
            if deal.outcome != Quote.Status.DRAFT:
                quote = quote_submit(quote=quote, by=sales)
            if deal.outcome == Quote.Status.SENT:
                quote_mark_sent(quote=quote, by=sales, to=customer.billing_email)
            self.created["quotes"] += 1

    def seed_portal_membership(self) -> None:
        user_model = get_user_model()
        customer = Customer.objects.get(external_id=PORTAL_CUSTOMER)
        user = user_model.objects.filter(username="customer").first()
        if user is None:
            user = user_model.objects.create_user(
                "customer", "maya.lopez@northwind.example", "customer-demo", first_name="Maya"
            )
            self.created["users"] += 1
        PortalMembership.objects.get_or_create(user=user, defaults={"customer": customer})

    def seed_api_key(self) -> str | None:
        if ApiKey.objects.filter(name=API_KEY_NAME).exists():
            return None
        _, raw = api_key_create(name=API_KEY_NAME)
        return raw

    # -- the summary ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        user_model = get_user_model()
        quotes = Counter(Quote.objects.values_list("status", flat=True))
        invoices = Counter(Invoice.objects.values_list("status", flat=True))
        return {
            "users": user_model.objects.count(),
            "customers": Customer.objects.count(),
            "plans": Plan.objects.count(),
            "charges": Charge.objects.count(),
            "quotes": dict(sorted(quotes.items())),
            "subscriptions": Subscription.objects.count(),
            "prepaid_credits": PrepaidCredit.objects.count(),
            "events": Event.objects.count(),
            "invoices": dict(sorted(invoices.items())),
            "payments": Payment.objects.count(),
            "reversed": Payment.objects.exclude(reversed_on=None).count(),
            "refunds": Refund.objects.count(),
            "write_offs": WriteOff.objects.count(),
        }

    def report(self, before: dict, after: dict, raw_key: str | None) -> None:
        out, style = self.stdout, self.style
        company = settings.BILLING_COMPANY["name"]
        for warning in self.warnings:
            out.write(style.WARNING(warning))
        if before == after:
            out.write(style.SUCCESS(f"{company}: the demo company was already seeded; no changes."))
        else:
            made = ", ".join(f"{n} {k}" for k, n in self.created.items() if n) or "history only"
            out.write(style.SUCCESS(f"{company}: demo company seeded ({made})."))
        out.write(
            f"Usage events: {self.events_received:,} sent, {self.events_created:,} new, "
            f"{self.events_received - self.events_created:,} duplicates (already stored)."
        )
        due = list(Invoice.objects.filter(status=Invoice.Status.FINALIZED))
        overdue = [i for i in due if i.due_date < self.today]
        issued = Invoice.objects.exclude(status=Invoice.Status.DRAFT)
        # (currency, amount) pairs, added up exactly by by_currency (SQL SUM is a float on SQLite)
        billed = issued.values_list("currency", "total")
        recognized = RecognitionLine.objects.exclude(entry=None).values_list(
            "obligation__contract__currency", "amount"
        )
        quotes = ", ".join(f"{n} {status}" for status, n in after["quotes"].items())
        invoices = ", ".join(
            f"{n} {Invoice.Status(s).label.lower()}" for s, n in after["invoices"].items()
        )
        versions = Charge.objects.filter(effective_from__gt=self.today).order_by("effective_from")
        upcoming = "; ".join(
            f"{c.plan.name} {c.name.lower()} {plain(c.unit_price)} {c.currency} from "
            f"{c.effective_from}"
            for c in versions.select_related("plan")
        )
        out.write(
            "\n".join(
                [
                    f"  customers      {after['customers']}",
                    f"  plans          {after['plans']}, {after['charges']} charges"
                    + (f" (price changes: {upcoming})" if upcoming else ""),
                    f"  quotes         {sum(after['quotes'].values())} ({quotes})",
                    f"  subscriptions  {after['subscriptions']}, "
                    f"{after['prepaid_credits']} prepaid credits",
                    f"  usage events   {after['events']:,}",
                    f"  invoices       {sum(after['invoices'].values())} ({invoices}); "
                    f"billed {by_currency(billed)}",
                    f"  receivables    {by_currency(open_amounts(due))} open, of which "
                    f"{by_currency(open_amounts(overdue))} overdue on {len(overdue)} invoices",
                    f"  payments       {after['payments']}",
                    f"  revenue        {by_currency(recognized)} recognized",
                    f"  users          {after['users']}",
                ]
            )
        )
        if raw_key:
            out.write(
                f"API key {API_KEY_NAME!r} (shown once, store it now; send it as "
                f"'Authorization: Bearer <key>'):\n  {raw_key}"
            )
        else:
            out.write(
                f"API key {API_KEY_NAME!r} exists (keys are stored hashed and cannot be shown "
                "again); make a new one with `manage.py create_api_key NAME`."
            )
        out.write("")
        out.write(summary_text())
