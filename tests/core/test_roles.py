"""The role × action matrix of docs/operations.md ("Who may do what"), checked over HTTP.

MODELS and ACTIONS mirror the doc's tables: for each model registered in the admin, what each
back-office role may do with it — v view, a add, c change, d delete, as the admin offers it (a
model whose records only services write offers no add, whatever the permissions say). Anonymous
visitors and portal customers get the admin's login page for every admin URL.
"""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from core.services import api_key_create
from customers.models import Customer
from invoicing.models import CreditNote, Invoice, NumberSeries
from metering.models import AlertFiring, Event
from quotes.models import ApprovalRule
from quotes.services import quote_populate_lines
from receivables.models import (
    BankLine,
    BankStatement,
    DunningNotice,
    DunningPause,
    DunningPolicy,
    Payment,
)
from revrec.models import Account, RevenueContract
from subscriptions.models import PrepaidCredit
from tests.factories import (
    CustomerFactory,
    PortalMembershipFactory,
    QuoteFactory,
    UsageAlertFactory,
    UserFactory,
    hybrid_plan,
    subscribe,
)
from tests.revrec.ledger import post

STAFF = ("sales", "finance", "operator", "superuser")
OUTSIDERS = ("anonymous", "portal")
PRINCIPALS = OUTSIDERS + STAFF

# model: (sales, finance, operator, superuser) — keep in step with docs/operations.md
MODELS: dict[str, tuple[str, str, str, str]] = {
    "auth.group": ("", "", "v", "vacd"),
    "auth.user": ("", "", "vacd", "vacd"),
    "axes.accessattempt": ("", "", "vd", "vcd"),
    "axes.accessfailurelog": ("", "", "v", "vcd"),
    "axes.accesslog": ("", "", "v", "vcd"),
    "django_celery_beat.clockedschedule": ("", "", "vacd", "vacd"),
    "django_celery_beat.crontabschedule": ("", "v", "vacd", "vacd"),
    "django_celery_beat.intervalschedule": ("", "v", "vacd", "vacd"),
    "django_celery_beat.periodictask": ("", "v", "vacd", "vacd"),
    "django_celery_beat.solarschedule": ("", "", "vacd", "vacd"),
    "core.apikey": ("", "", "vc", "vcd"),
    "customers.customer": ("vac", "vacd", "", "vacd"),
    "catalog.billablemetric": ("v", "vacd", "", "vacd"),
    "catalog.charge": ("v", "vacd", "", "vacd"),
    "catalog.plan": ("v", "vacd", "", "vacd"),
    "subscriptions.subscription": ("v", "vc", "", "vcd"),
    "subscriptions.prepaidcredit": ("", "va", "", "vacd"),
    "quotes.quote": ("vacd", "vc", "", "vacd"),  # delete: drafts only
    "quotes.quoteline": ("vc", "v", "", "vc"),  # tiers & ramp; change: editable quotes only
    "quotes.approvalrule": ("v", "vacd", "", "vacd"),
    "metering.event": ("", "v", "", "v"),
    "metering.usagealert": ("", "vac", "", "vacd"),
    "metering.alertfiring": ("", "v", "", "v"),
    "invoicing.invoice": ("v", "vcd", "", "vcd"),  # delete: drafts only
    "invoicing.creditnote": ("", "v", "", "v"),  # issued from the invoice page
    "invoicing.numberseries": ("", "v", "", "v"),
    "receivables.payment": ("", "va", "", "va"),  # read-only facts: un-apply or reverse
    "receivables.dunningpolicy": ("", "vacd", "", "vacd"),
    "receivables.dunningpause": ("", "vacd", "", "vacd"),
    "receivables.dunningnotice": ("", "v", "", "v"),
    "receivables.bankstatement": ("", "va", "", "va"),
    "receivables.bankline": ("", "v", "", "v"),
    "revrec.revenuecontract": ("", "v", "", "v"),  # written by the recognition run
    "revrec.account": ("", "vac", "", "vac"),  # never deleted: an unused one is made inactive
    "revrec.accountingperiod": ("", "v", "", "v"),  # closed and reopened from its page
    "revrec.journalentry": ("", "v", "", "v"),  # posted by services, never edited
}

# (model, action): the roles that may run it — keep in step with docs/operations.md
ACTIONS: dict[tuple[str, str], set[str]] = {
    ("quotes.quote", "submit_for_approval"): {"sales", "finance", "superuser"},
    ("quotes.quote", "approve"): {"finance", "superuser"},
    ("quotes.quote", "mark_sent"): {"sales", "finance", "superuser"},
    ("quotes.quote", "accept"): {"sales", "finance", "superuser"},
    ("quotes.quote", "decline"): {"sales", "finance", "superuser"},
    ("quotes.quote", "expire"): {"sales", "finance", "superuser"},
    ("invoicing.invoice", "finalize"): {"finance", "superuser"},
    ("django_celery_beat.periodictask", "enable_tasks"): {"operator", "superuser"},
    ("django_celery_beat.periodictask", "disable_tasks"): {"operator", "superuser"},
    ("django_celery_beat.periodictask", "toggle_tasks"): {"operator", "superuser"},
    ("django_celery_beat.periodictask", "run_tasks"): {"operator", "superuser"},
}


def registered() -> dict[str, admin.ModelAdmin]:
    return {
        model._meta.label_lower: model_admin for model, model_admin in admin.site._registry.items()
    }


def test_the_matrix_covers_every_admin_model_and_action():
    models = registered()
    assert sorted(models) == sorted(MODELS), "a model is missing from MODELS (and from the doc)"
    actions = {
        (label, getattr(action, "__name__", action))
        for label, model_admin in models.items()
        for action in model_admin.actions or ()
    }
    assert actions == set(ACTIONS), "an admin action is missing from ACTIONS (and from the doc)"


def test_every_group_has_exactly_its_grants(db):
    from core.roles import ROLES, codename

    for role, grants in ROLES.items():
        granted = set(
            Group.objects.get(name=role).permissions.values_list(
                "content_type__app_label", "codename"
            )
        )
        expected = {
            (label.split(".")[0], codename(action, label.split(".")[1]))
            for label, actions in grants.items()
            for action in actions
        }
        assert granted == expected, role


@pytest.fixture
def world(db):
    """One record of every model registered in the admin, and one user per principal."""
    with time_machine.travel("2026-02-14 12:00Z", tick=False):
        customer = CustomerFactory(external_id="acme")
        plan = hybrid_plan()
        subscription = subscribe(customer=customer, plan=plan)
        metric = subscription.items.exclude(metric=None).first().metric
        alert = UsageAlertFactory(subscription=subscription, metric=metric)
        quote = QuoteFactory(customer=customer, plan=plan)
        quote_populate_lines(quote=quote)
        now = dt.datetime(2026, 2, 14, 12, tzinfo=dt.UTC)
        records = {
            "auth.group": Group.objects.get(name="Sales"),
            "auth.user": UserFactory(username="someone", is_staff=True),
            "axes.accessfailurelog": AccessFailureLog.objects.create(
                user_agent="ua", http_accept="*/*", path_info="/admin/login/"
            ),
            "axes.accesslog": AccessLog.objects.create(
                user_agent="ua", http_accept="*/*", path_info="/admin/login/"
            ),
            "django_celery_beat.clockedschedule": ClockedSchedule.objects.create(clocked_time=now),
            "django_celery_beat.crontabschedule": CrontabSchedule.objects.create(hour="3"),
            "django_celery_beat.intervalschedule": IntervalSchedule.objects.first(),
            "django_celery_beat.periodictask": PeriodicTask.objects.first(),
            "django_celery_beat.solarschedule": SolarSchedule.objects.create(
                event="sunrise", latitude=Decimal("48.85"), longitude=Decimal("2.35")
            ),
            "core.apikey": api_key_create(name="pipeline")[0],
            "customers.customer": customer,
            "catalog.billablemetric": metric,
            "catalog.charge": plan.charges.first(),
            "catalog.plan": plan,
            "subscriptions.subscription": subscription,
            "subscriptions.prepaidcredit": PrepaidCredit.objects.create(
                subscription=subscription,
                granted=Decimal("100"),
                remaining=Decimal("100"),
                granted_on=dt.date(2026, 2, 1),
            ),
            "quotes.quote": quote,
            "quotes.quoteline": quote.lines.first(),
            "quotes.approvalrule": ApprovalRule.objects.create(
                name="Line discount above 5%",
                kind=ApprovalRule.Kind.LINE_DISCOUNT_ABOVE,
                threshold=Decimal("5"),
            ),
            "metering.event": Event.objects.create(
                customer=customer,
                subscription=subscription,
                transaction_id="t1",
                code=metric.code,
                timestamp=now,
                received_at=now,
            ),
            "metering.usagealert": alert,
            "metering.alertfiring": AlertFiring.objects.create(
                alert=alert,
                period_start=dt.date(2026, 2, 15),
                period_end=dt.date(2026, 3, 15),
                value=Decimal("10"),
                threshold=Decimal("5"),
                fired_at=now,
            ),
            "invoicing.invoice": Invoice.objects.create(
                customer=customer,
                subscription=subscription,
                billing_date=dt.date(2026, 2, 15),
                currency="USD",
            ),
            "invoicing.numberseries": NumberSeries.objects.create(name="TEST"),
            "receivables.payment": Payment.objects.create(
                customer=customer,
                amount=Decimal("10"),
                received_on=dt.date(2026, 2, 14),
                currency="USD",
            ),
            "receivables.dunningpolicy": DunningPolicy.objects.get(name="Default"),
            "receivables.dunningpause": DunningPause.objects.create(
                customer=customer, excluded=True
            ),
            "revrec.revenuecontract": RevenueContract.objects.create(
                subscription=subscription,
                customer=customer,
                currency="USD",
                start=dt.date(2026, 1, 15),
                end=dt.date(2026, 4, 15),
            ),
            "revrec.account": Account.objects.get(role="cash"),
        }
        records["revrec.journalentry"] = post("1", "2026-02-14", "10.00")
        records["revrec.accountingperiod"] = records["revrec.journalentry"].period
    users = {
        "portal": PortalMembershipFactory(customer=customer, user__username="ana").user,
        "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
    }
    for role in ("sales", "finance", "operator"):
        users[role] = UserFactory(username=role, is_staff=True)
        users[role].groups.add(Group.objects.get(name=role.capitalize()))
    records["receivables.dunningnotice"] = DunningNotice.objects.create(
        invoice=records["invoicing.invoice"],
        step=records["receivables.dunningpolicy"].steps.first(),
        sent_on=dt.date(2026, 2, 14),
        to="ap@acme.example",
        amount_due=Decimal("10"),
    )
    records["invoicing.creditnote"] = CreditNote.objects.create(
        invoice=records["invoicing.invoice"],
        customer=customer,
        number="CN-TEST",
        kind=CreditNote.Kind.AMOUNT,
        currency="USD",
        issue_date=dt.date(2026, 2, 14),
        subtotal=Decimal("1"),
        tax_amount=Decimal("0"),
        total=Decimal("1"),
    )
    records["receivables.bankstatement"] = BankStatement.objects.create(
        file_name="feb.csv", sha256="0" * 64, currency="USD"
    )
    records["receivables.bankline"] = BankLine.objects.create(
        statement=records["receivables.bankstatement"],
        row=2,
        booked_on=dt.date(2026, 2, 14),
        amount=Decimal("10"),
        currency="USD",
        fingerprint="1" * 64,
    )
    # Now, not in the past: an expired attempt is cleaned up at the next login.
    records["axes.accessattempt"] = AccessAttempt.objects.create(
        user_agent="ua",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="",
        failures_since_start=1,
        username="someone",
        ip_address="10.0.0.9",
    )
    return records, users


def _login(client, world, principal):
    if principal != "anonymous":
        client.force_login(world[1][principal])


def _is_login_redirect(answer) -> bool:
    return answer.status_code == 302 and answer["Location"].startswith("/admin/login/")


def _model_pages(client, record, label) -> dict:
    app, model = label.split(".")
    urls = {
        "changelist": reverse(f"admin:{app}_{model}_changelist"),
        "add": reverse(f"admin:{app}_{model}_add"),
        "change": reverse(f"admin:{app}_{model}_change", args=[record.pk]),
        "delete": reverse(f"admin:{app}_{model}_delete", args=[record.pk]),
    }
    return {page: client.get(url) for page, url in urls.items()}


@pytest.mark.parametrize("principal", OUTSIDERS)
def test_outsiders_get_the_admin_login_page_for_every_admin_url(client, world, principal):
    _login(client, world, principal)

    for label in MODELS:
        answers = _model_pages(client, world[0][label], label)

        assert all(_is_login_redirect(a) for a in answers.values()), (label, answers)


@pytest.mark.parametrize("principal", STAFF)
def test_staff_get_what_the_matrix_says_on_every_admin_model(client, world, principal):
    # Given a staff principal (one test per role: the world is built once for all models)
    _login(client, world, principal)

    # When it opens each model's list, add, change and delete pages
    seen, expected = {}, {}
    for label, rights in MODELS.items():
        answers = _model_pages(client, world[0][label], label)
        change = answers["change"]
        seen[label] = {
            "changelist": answers["changelist"].status_code,
            "add": answers["add"].status_code,
            "change": change.status_code,
            "delete": answers["delete"].status_code,
            # a change page that may be saved; a view-only one has no Save button
            "save": change.status_code == 200 and 'name="_save"' in change.content.decode(),
        }
        mine = rights[STAFF.index(principal)]
        can_see = "v" in mine or "c" in mine
        expected[label] = {
            "changelist": 200 if can_see else 403,
            "add": 200 if "a" in mine else 403,
            "change": 200 if can_see else 403,
            "delete": 200 if "d" in mine else 403,
            "save": "c" in mine,
        }

    # Then each answer is what the matrix says
    assert {k: v for k, v in seen.items() if v != expected[k]} == {}


def _try_action(client, record, label, action, principal) -> str:
    """ "login", 403, "offered and run", or "refused" (not offered; posting it does nothing)."""
    changelist = reverse("admin:{}_{}_changelist".format(*label.split(".")))
    listing = client.get(changelist)
    if _is_login_redirect(listing) or listing.status_code == 403:
        return "login" if listing.status_code == 302 else 403
    offered = f'<option value="{action}">' in listing.content.decode()
    if action == "run_tasks":
        # Posting it would send the task to the broker: being offered is what matters here.
        return "offered and run" if offered else "refused"
    answer = client.post(
        changelist, {"action": action, "_selected_action": [record.pk], "index": "0"}
    )
    # Run: back to the list. Not offered: the list again (no action at all for this user), or
    # back to it with "No action selected."
    notes = [str(m) for m in get_messages(answer.wsgi_request)]
    ran = answer.status_code == 302 and "No action selected." not in notes
    assert answer.status_code in (200, 302), (label, action, answer.status_code)
    assert ran is offered, (label, action, principal)
    return "offered and run" if ran else "refused"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_admin_actions_run_for_the_roles_the_matrix_names(client, world, principal):
    _login(client, world, principal)

    seen = {key: _try_action(client, world[0][key[0]], *key, principal) for key in sorted(ACTIONS)}

    def expected(label, action):
        if principal in OUTSIDERS:
            return "login"
        if principal in ACTIONS[(label, action)]:
            return "offered and run"
        mine = MODELS[label][STAFF.index(principal)]
        return "refused" if "v" in mine or "c" in mine else 403

    assert seen == {key: expected(*key) for key in sorted(ACTIONS)}


@pytest.mark.parametrize(
    ("principal", "status", "location"),
    [
        ("anonymous", 302, "/portal/login/?next=/portal/"),
        ("portal", 200, None),
        ("sales", 302, "/admin/"),
        ("finance", 302, "/admin/"),
        ("operator", 302, "/admin/"),
        ("superuser", 302, "/admin/"),
    ],
)
def test_the_portal_is_for_customers_and_sends_staff_to_the_admin(
    client, world, principal, status, location
):
    _login(client, world, principal)

    answer = client.get("/portal/")

    assert answer.status_code == status
    assert answer.get("Location") == location


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_the_api_takes_api_keys_only_not_logins(client, world, principal):
    _login(client, world, principal)

    answer = client.post("/api/v1/events", {}, content_type="application/json")

    assert answer.status_code == 401


# --- what the matrix does not show: fields and inlines ------------------------------------------


def test_sales_sees_the_subscription_with_its_items_and_schedule_and_the_invoice_lines(
    client, world
):
    records, users = world
    client.force_login(users["sales"])
    subscription, invoice = records["subscriptions.subscription"], records["invoicing.invoice"]

    page = client.get(reverse("admin:subscriptions_subscription_change", args=[subscription.pk]))
    invoice_page = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))

    formsets = [f.formset.prefix for f in page.context["inline_admin_formsets"]]
    assert formsets == ["items", "billing_periods"]
    assert 'name="_save"' not in page.content.decode()
    assert [f.formset.prefix for f in invoice_page.context["inline_admin_formsets"]] == ["lines"]


def test_a_customer_added_by_sales_gets_the_default_financial_terms(client, world):
    client.force_login(world[1]["sales"])

    answer = client.post(
        reverse("admin:customers_customer_add"),
        {
            "external_id": "globex",
            "name": "Globex",
            "address": "1 Main St",
            "currency": "EUR",
            "tax_rate": "20",
            "payment_terms_days": "90",
            "billing_email": "me@sales.example",
        },
    )

    assert answer.status_code == 302
    globex = Customer.objects.get(external_id="globex")
    assert (globex.name, globex.address) == ("Globex", "1 Main St")
    assert (globex.currency, globex.tax_rate, globex.payment_terms_days) == ("USD", 0, 30)
    assert globex.billing_email == ""  # Finance fills it in


@pytest.mark.parametrize(
    ("principal", "changed"), [("sales", False), ("finance", True), ("superuser", True)]
)
def test_only_finance_changes_a_customers_financial_terms(client, world, principal, changed):
    records, users = world
    customer = records["customers.customer"]
    client.force_login(users[principal])
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    form = client.get(url).context["adminform"].form
    data = {
        **{name: form[name].value() for name in form.fields},
        "name": "Acme Corp",
        "tax_rate": "8.5",
        "payment_terms_days": "45",
        "billing_email": "ap@acme.example",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    data = {k: v for k, v in data.items() if v is not None}

    answer = client.post(url, data)

    assert answer.status_code == 302, answer.context and answer.context["errors"]
    customer.refresh_from_db()
    assert customer.name == "Acme Corp"
    terms = (customer.tax_rate, customer.payment_terms_days, customer.billing_email)
    before = (Decimal("0"), 30, "billing@acme.example")
    assert terms == ((Decimal("8.5"), 45, "ap@acme.example") if changed else before)


def test_an_operator_cannot_make_a_superuser_nor_edit_one(client, world):
    records, users = world
    client.force_login(users["operator"])
    someone = records["auth.user"]

    page = client.get(reverse("admin:auth_user_change", args=[someone.pk]))
    root_page = client.get(reverse("admin:auth_user_change", args=[users["superuser"].pk]))

    fields = page.context["adminform"].form.fields
    assert "is_superuser" not in fields and "user_permissions" not in fields
    assert "groups" in fields and "is_staff" in fields
    assert 'name="_save"' not in root_page.content.decode()


def test_the_invoice_pdf_is_for_who_may_see_the_invoice(client, world):
    records, users = world
    client.force_login(users["operator"])

    answer = client.get(
        reverse("admin:invoicing_invoice_pdf", args=[records["invoicing.invoice"].pk])
    )

    assert answer.status_code == 403
