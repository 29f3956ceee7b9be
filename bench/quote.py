"""A large quote: its totals recomputation and its admin change page, with N lines.

    .venv/bin/python bench/quote.py [--lines N] [--repeat K]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database and migrates it, then makes a plan with four charges (platform fee and seats in advance,
API calls at a unit price and tokens on 3 graduated tiers, in arrears), a customer, a sales user (in
the Sales group) and two draft quotes: one with N lines and one with 5, the lines cycling over the
plan's charges and kinds (every 10th line a one-time fee, every 25th prepaid credits, a
percentage discount on every 3rd line, an amount discount on every 7th seats line, estimates and
minimums on the usage lines, a ramp on every 20th seats line and negotiated tiers on every 8th
tokens line).

For each quote it measures, in this process, K times after one warm-up and keeping the median:
- totals: `quotes.totals.quote_totals` (reads the lines, their tiers and phases, and rates every
  line over the term: MRR, ARR, ACV, TCV, estimated usage, list and discount);
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
    from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier

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
        QuoteLine.objects.bulk_create(line(quote, charges, n) for n in range(count))
        saved = list(quote.lines.select_related("charge").order_by("id"))
        QuoteLineTier.objects.bulk_create(
            QuoteLineTier(line=x, up_to=up_to, unit_price=Decimal(price), position=p)
            for x in saved
            if x.charge_id == charges[3].pk and x.position % 8 == 3
            for p, (up_to, price) in enumerate([(2_000_000, "0.0000035"), (None, "0.0000025")])
        )
        QuoteLinePhase.objects.bulk_create(
            QuoteLinePhase(line=x, start_month=first, end_month=last, quantity=Decimal(qty))
            for x in saved
            if x.charge_id == charges[1].pk and x.position % 20 == 1
            for first, last, qty in [(1, 6, 10), (7, 12, 15)]
        )
        quotes.append(quote)
    log(f"fixtures: 1 plan with 4 charges, quotes of {', '.join(map(str, lines_counts))} lines")
    return rep, quotes


def line(quote, charges, n: int):
    """The n-th line of a benchmark quote: mixed kinds, discounts, estimates (see the module)."""
    from quotes.models import QuoteLine

    position = n % 30000
    if n % 25 == 24:
        return QuoteLine(
            quote=quote, kind="credit", description=f"Credits {n}", unit_price=Decimal("100"),
            position=position,
        )  # fmt: skip
    if n % 10 == 9:
        return QuoteLine(
            quote=quote, kind="one_time", description=f"Training {n}", quantity=Decimal(2),
            unit_price=Decimal("750"), position=position,
        )  # fmt: skip
    charge = charges[n % len(charges)]
    usage = charge.metric_id is not None
    return QuoteLine(
        quote=quote,
        kind="usage" if usage else "recurring",
        charge=charge,
        description=f"{charge.name} {n}",
        quantity=Decimal(0) if usage else Decimal(n % 40 + 1),
        unit_price=Decimal("24") if n % len(charges) == 1 and n % 3 else None,
        discount_percent=Decimal(n % 15) if n % 3 == 0 else None,
        discount_amount=Decimal("1.5") if n % 7 == 1 and n % 3 and n % 4 == 1 else None,
        estimated_quantity=Decimal(250_000 * (n % 9 + 1)) if usage else None,
        minimum_amount=Decimal(100) if usage and n % 2 else None,
        position=position,
    )


def measure(client, quote, repeat: int) -> tuple[float, float, int]:
    """Median totals and page times (ms) and the page's query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from quotes.models import Quote
    from quotes.totals import quote_totals

    totals = []
    for n in range(repeat + 1):
        started = time.perf_counter()
        quote_totals(Quote.objects.select_related("customer", "plan").get(pk=quote.pk))
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
