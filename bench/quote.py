"""A large quote: its totals recomputation and its admin change page, with N lines.

    .venv/bin/python bench/quote.py [--lines N] [--repeat K]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database and migrates it, then makes a plan with four charges (platform fee and seats in advance,
API calls at a unit price and tokens on 3 graduated tiers, in arrears), a customer, a sales user (in
the Sales group) and two draft quotes: one with N lines and one with 5, the lines cycling over the
plan's charges.

For each quote it measures, in this process, K times after one warm-up and keeping the median:
- totals: `quotes.services.quote_recurring_total` (reads the lines, rates the fixed ones);
- page: GET /admin/quotes/quote/<id>/change/ through Django's test Client, logged in as the sales
  user (DEBUG off), which must answer 200; its queries are counted on the last request.

Progress goes to stderr; the last line on stdout is the result:
    quote <N> lines: totals <ms> ms, page <ms> ms, <n> queries (<r> × the queries at 5 lines)
The scratch database is dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import log  # noqa: E402

SMALL = 5


def build(lines_counts: list[int]) -> tuple[object, list]:
    """The plan, customer, sales user and one draft quote per line count."""
    import datetime as dt

    from django.contrib.auth.models import Group, User

    from catalog.models import BillableMetric, Charge, ChargeTier, Plan
    from core import clock
    from customers.models import Customer
    from quotes.models import Quote, QuoteLine

    calls = BillableMetric.objects.create(
        code="api_calls", name="API calls", aggregation=BillableMetric.Aggregation.COUNT
    )
    tokens = BillableMetric.objects.create(
        code="tokens",
        name="Tokens",
        aggregation=BillableMetric.Aggregation.SUM,
        field_name="tokens",
    )
    plan = Plan.objects.create(code="bench_quote", name="Benchmark plan", currency="USD")
    advance, arrears = Charge.Timing.IN_ADVANCE, Charge.Timing.IN_ARREARS
    charges = [
        Charge.objects.create(
            plan=plan, name="Platform fee", charge_model=Charge.Model.FLAT,
            billing_timing=advance, unit_price=Decimal("500"), position=0,
        ),
        Charge.objects.create(
            plan=plan, name="Seats", charge_model=Charge.Model.STANDARD, billing_timing=advance,
            unit_price=Decimal("25"), unit_name="seat", default_quantity=Decimal("5"), position=1,
        ),
        Charge.objects.create(
            plan=plan, name="API calls", metric=calls, charge_model=Charge.Model.STANDARD,
            billing_timing=arrears, unit_price=Decimal("0.002"), position=2,
        ),
        Charge.objects.create(
            plan=plan, name="Tokens", metric=tokens, charge_model=Charge.Model.GRADUATED,
            billing_timing=arrears, position=3,
        ),
    ]  # fmt: skip
    for lower, up_to, price in [(0, 1_000_000, "0.000004"), (1_000_000, 10_000_000, "0.000003"),
                                (10_000_000, None, "0.000002")]:  # fmt: skip
        ChargeTier.objects.create(
            charge=charges[3], from_units=lower, up_to=up_to, unit_price=Decimal(price)
        )
    customer = Customer.objects.create(
        external_id="bench_quote_cust", name="Benchmark customer", billing_email="b@bench.example"
    )
    rep = User.objects.create_user("bench_rep", password=None, is_staff=True)
    rep.groups.add(Group.objects.get(name="Sales"))
    quotes = []
    for count in lines_counts:
        quote = Quote.objects.create(
            customer=customer,
            plan=plan,
            title=f"{count} lines",
            start_date=clock.today(),
            valid_until=clock.today() + dt.timedelta(days=30),
            owner=rep,
        )
        QuoteLine.objects.bulk_create(
            QuoteLine(
                quote=quote,
                charge=charges[n % len(charges)],
                description=f"{charges[n % len(charges)].name} {n}",
                quantity=Decimal(n % 40 + 1),
                unit_price=Decimal("24") if n % len(charges) == 1 else None,
                position=n % 30000,
            )
            for n in range(count)
        )
        quotes.append(quote)
    log(f"fixtures: 1 plan with 4 charges, quotes of {', '.join(map(str, lines_counts))} lines")
    return rep, quotes


def measure(client, quote, repeat: int) -> tuple[float, float, int]:
    """Median totals and page times (ms) and the page's query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from quotes.services import quote_recurring_total

    totals = []
    for n in range(repeat + 1):
        started = time.perf_counter()
        quote_recurring_total(quote=quote)
        if n:
            totals.append((time.perf_counter() - started) * 1000)
    pages, url = [], f"/admin/quotes/quote/{quote.pk}/change/"
    for n in range(repeat + 1):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        if n:
            pages.append(elapsed)
    return statistics.median(totals), statistics.median(pages), len(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500, help="lines of the large quote (500)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs, median kept (5)")
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database(prefix="q2c_bench_quote") as url:
        scratch.migrate(url)
        scratch.django_setup(url)
        from django.test import Client

        rep, (large, small) = build([args.lines, SMALL])
        client = Client(SERVER_NAME="127.0.0.1")
        client.force_login(rep)
        s_totals, s_page, s_queries = measure(client, small, args.repeat)
        log(f"{SMALL} lines: totals {s_totals:.1f} ms, page {s_page:.0f} ms, {s_queries} queries")
        totals, page, queries = measure(client, large, args.repeat)
        log(f"load after: {scratch.load()}")
    print(
        f"quote {args.lines} lines: totals {totals:.1f} ms, page {page:.0f} ms, {queries} queries "
        f"({queries / s_queries:.2f} × the {s_queries} queries at {SMALL} lines)"
    )


if __name__ == "__main__":
    main()
