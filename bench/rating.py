"""Rating engine throughput: charges rated per second for each charge model.

    .venv/bin/python bench/rating.py [--seconds S]

Each model rates a fixed set of varied quantities (seeded, 6 decimal places, spread over every
tier) in a loop for about S seconds; the figure is the best of 3 repeats. The baseline, measured in
the same run, is a plain loop of Decimal multiplications (quantity × unit price) over the same
quantities: the cost of the arithmetic alone. A percentage charge is rated from 1,000 event
amounts per `rate_events` call: one call counts as one charge rated.
"""

import argparse
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog.rating import rate, rate_events  # noqa: E402  (pure module: no django.setup())

REPEATS = 3
EVENTS_PER_CHARGE = 1_000
QUANTITY_COUNT = 1_024
EVENT_LISTS = 8

FIVE_TIERS = [
    {"up_to": "1000", "unit_price": "0.010000000000", "flat_fee": "0"},
    {"up_to": "10000", "unit_price": "0.008000000000", "flat_fee": "5.00"},
    {"up_to": "100000", "unit_price": "0.006000000000", "flat_fee": "10.00"},
    {"up_to": "1000000", "unit_price": "0.004000000000", "flat_fee": "20.00"},
    {"up_to": None, "unit_price": "0.002000000000", "flat_fee": "50.00"},
]
PRICINGS = {
    "standard": {"model": "standard", "unit_price": "0.002000000000", "free_units": "100"},
    "graduated (5 tiers)": {"model": "graduated", "tiers": FIVE_TIERS, "min_amount": "25.00"},
    "volume (5 tiers)": {"model": "volume", "tiers": FIVE_TIERS, "max_amount": "5000.00"},
    "package": {
        "model": "package",
        "package_size": "100",
        "package_price": "10.000000000000",
        "free_units": "50",
    },
}
PERCENTAGE = {
    "model": "percentage",
    "rate": "1.5",
    "fixed_fee": "0.10",
    "min_per_event": "0.25",
    "max_per_event": "5.00",
    "free_events": "10",
}


def quantities(rng: random.Random) -> list[Decimal]:
    """Varied quantities: 0, tier edges, and 6-place values of every magnitude up to 5,000,000."""
    edges = [Decimal(t["up_to"]) + d for t in FIVE_TIERS[:-1] for d in (0, 1)]
    spread = [
        Decimal(rng.randint(0, 5 * 10 ** (rng.randint(0, 6) + 6))).scaleb(-6)
        for _ in range(QUANTITY_COUNT - len(edges) - 1)
    ]
    return [Decimal(0), *edges, *spread]


def event_lists(rng: random.Random) -> list[list[Decimal]]:
    """Event amounts from 0.01 to 2,000.00, so some fees hit the minimum and some the cap."""
    return [
        [Decimal(rng.randint(1, 200_000)).scaleb(-2) for _ in range(EVENTS_PER_CHARGE)]
        for _ in range(EVENT_LISTS)
    ]


def best_rate(batch, batch_size: int, seconds: float) -> float:
    """Run `batch` (batch_size operations) for about `seconds`; best operations/s of REPEATS."""
    best = 0.0
    for _ in range(REPEATS):
        done, start = 0, time.perf_counter()
        while True:
            batch()
            done += batch_size
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, done / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement (default 1.0)")
    args = parser.parse_args()

    rng = random.Random(20240601)
    qs = quantities(rng)
    events = event_lists(rng)
    unit_price = Decimal("0.002000000000")

    def decimal_baseline() -> None:
        for q in qs:
            q * unit_price

    baseline = best_rate(decimal_baseline, len(qs), args.seconds)

    def fmt(n: float) -> str:
        return f"{n:,.0f}"

    def times(n: float) -> str:
        """A ratio with 3 significant digits, never in exponent notation: 0.0000807."""
        return format(Decimal(f"{n:.3g}"), "f")

    def line(name: str, per_second: float) -> str:
        return (
            f"{name}: {fmt(per_second)} charges/s "
            f"({times(per_second / baseline)} × the Decimal baseline of {fmt(baseline)} mult/s)"
        )

    results: dict[str, float] = {}
    for name, pricing in PRICINGS.items():
        assert all(isinstance(rate(pricing, q).amount, Decimal) for q in qs)  # and warms up

        def batch(pricing=pricing) -> None:
            for q in qs:
                rate(pricing, q)

        results[name] = best_rate(batch, len(qs), args.seconds)
        print(line(name, results[name]), flush=True)

    def percentage_batch() -> None:
        for amounts in events:
            rate_events(PERCENTAGE, amounts)

    charges = best_rate(percentage_batch, len(events), args.seconds)
    per_event = charges * EVENTS_PER_CHARGE
    results["percentage"] = charges
    print(
        line(f"percentage ({EVENTS_PER_CHARGE:,} events/charge)", charges)
        + f"; {fmt(per_event)} events/s ({times(per_event / baseline)} × baseline)",
        flush=True,
    )

    quantity_models = {k: v for k, v in results.items() if k != "percentage"}
    slow = min(quantity_models, key=quantity_models.get)
    fast = max(quantity_models, key=quantity_models.get)
    low, high = quantity_models[slow], quantity_models[fast]
    print(
        f"summary: quantity models {fmt(low)}–{fmt(high)} charges/s "
        f"(slowest {slow}, fastest {fast}; {times(low / baseline)}–{times(high / baseline)} × "
        f"baseline); percentage {fmt(per_event)} events/s; Decimal baseline {fmt(baseline)} mult/s;"
        f" {len(qs):,} quantities, best of {REPEATS} × {args.seconds:g} s, "
        f"Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
