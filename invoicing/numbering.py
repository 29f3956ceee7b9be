"""Gapless number series (INV-000001, CN-000001): a counter row locked while a number is taken,
so a rolled-back transaction gives its number back and two at once never share one."""

from invoicing.models import NumberSeries


def next_number(series: str) -> str:
    """The series' next number; call inside the transaction that uses it."""
    return next_numbers(series, 1)[0]


def next_numbers(series: str, count: int) -> list[str]:
    """The series' next `count` numbers, one gapless block; call inside the transaction that
    uses them, as late as it can (the series stays locked until it commits)."""
    counter, _ = NumberSeries.objects.get_or_create(name=series)
    counter = NumberSeries.objects.select_for_update().get(pk=counter.pk)
    first = counter.next_value
    counter.next_value += count
    counter.save(update_fields=["next_value"])
    return [f"{series}-{value:06d}" for value in range(first, first + count)]
