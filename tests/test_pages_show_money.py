"""Every admin and portal page of the demo company shows amounts as people read them (issue 18).

The demo company is seeded once; then the superuser opens every registered admin model's list, add
page and the change page of its first objects (a few more for the documents that carry money), the
dashboard and shadow billing, and the portal customer opens every portal page. The visible text of
each page (no scripts, styles, form fields or attributes: an editable field may hold a raw value)
must show no raw decimal with trailing zeros, no exponent and no JSON blob; invoice totals read as
money.
"""

import re
from html.parser import HTMLParser
from io import StringIO

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from customers.models import PortalMembership
from invoicing.models import Invoice

EVENTS = "30"  # per subscription: enough for usage lines, alerts and tiers; quick to seed
# Documents that carry money: their change pages are opened for a few objects, not one.
SEVERAL = {
    "invoicing.invoice",
    "subscriptions.subscription",
    "catalog.plan",
    "catalog.charge",
    "quotes.quote",
    "receivables.payment",
}

# A raw decimal that keeps zeros nobody reads: 2250.000000000000000, 4409.7400, 0.002000000000
# (three decimals or more, the last a zero; money shows its minor unit, prices and quantities
# their significant decimals only). Not a date, a version or an IP address (no dot or digit around).
RAW_DECIMAL = re.compile(r"(?<![\d.,])\d+\.\d{2,}0(?![\d.,])")
# A number in scientific notation (1E+1, 2.5e-7), standing alone: not inside a key prefix or a slug.
EXPONENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][+-]?\d+(?![\w.])")
JSON_BLOB = re.compile(r"\{\s*\"|\[\s*\{")
# A help text's example ("e.g. {"region": ["eu"]}") is prose, not a blob.
EXAMPLE = re.compile(r"(?:e\.g\.|Example:)\s*\{[^}]*\}")
SKIPPED = {"script", "style", "textarea", "select", "template", "noscript"}


class VisibleText(HTMLParser):
    """The text a person reads: no scripts, styles, form fields or attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED:
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag in SKIPPED and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser.text()


def _snippet(text: str, match: re.Match) -> str:
    return text[max(0, match.start() - 60) : match.end() + 60]


def problems(url: str, html: str) -> list[str]:
    text = EXAMPLE.sub("", visible_text(html))
    found = []
    for name, pattern in (
        ("raw decimal", RAW_DECIMAL),
        ("exponent", EXPONENT),
        ("JSON", JSON_BLOB),
    ):
        found += [f"{url}: {name}: …{_snippet(text, m)}…" for m in pattern.finditer(text)]
    return found


def _get(client, url: str, failures: list[str]) -> str | None:
    response = client.get(url)
    if response.status_code != 200:
        failures.append(f"{url}: HTTP {response.status_code}")
        return None
    html = response.content.decode()
    failures += problems(url, html)
    return html


def admin_urls(user) -> list[str]:
    request = RequestFactory().get("/admin/")
    request.user = user
    urls = [reverse("admin:index"), reverse("invoicing-shadow-billing")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        label = f"{opts.app_label}.{opts.model_name}"
        name = f"admin:{opts.app_label}_{opts.model_name}"
        urls.append(reverse(f"{name}_changelist"))
        if model_admin.has_add_permission(request):
            urls.append(reverse(f"{name}_add"))
        queryset = model_admin.get_queryset(request).order_by("pk")
        for pk in queryset.values_list("pk", flat=True)[: 5 if label in SEVERAL else 1]:
            urls.append(reverse(f"{name}_change", args=[pk]))
    return urls


@pytest.mark.django_db
@time_machine.travel("2026-11-28 12:00Z", tick=False)
def test_every_page_shows_amounts_as_money(client):
    call_command("seed_demo", "--events-per-subscription", EVENTS, stdout=StringIO())
    failures: list[str] = []

    # The back office, as the superuser.
    superuser = get_user_model().objects.get(username="admin")
    client.force_login(superuser)
    urls = admin_urls(superuser)
    for url in urls:
        _get(client, url, failures)
    for invoice in Invoice.objects.exclude(status=Invoice.Status.DRAFT)[:10]:
        url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
        html = _get(client, url, failures) or ""
        text = visible_text(html)
        sign = "€" if invoice.currency == "EUR" else "$"
        for label in ("Subtotal", "Total"):
            if not re.search(rf"{label}\s*{re.escape(sign)}\d", text):
                failures.append(f"{url}: {label} not shown as money in {invoice.currency}")

    # The portal, as the demo customer.
    membership = PortalMembership.objects.get(user__username="customer")
    client.force_login(membership.user)
    customer = membership.customer
    portal = [reverse("portal:home"), reverse("portal:invoices"), reverse("portal:alerts")]
    portal += [
        reverse("portal:invoice", args=[number])
        for number in customer.invoices.exclude(number="").values_list("number", flat=True)[:3]
    ]
    portal += [
        reverse("portal:subscription_usage", args=[external_id])
        for external_id in customer.subscriptions.values_list("external_id", flat=True)
    ]
    for url in portal:
        html = _get(client, url, failures)
        if html is None:
            failures.append(f"{url}: not shown to the portal customer")

    assert len(urls) > 60 and len(portal) >= 5
    assert not failures, "\n".join(failures)
