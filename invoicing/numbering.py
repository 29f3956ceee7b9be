"""Gapless number series (INV-000001, CN-000001): a counter row locked while a number is taken,
so a rolled-back transaction gives its number back and two at once never share one."""

from invoicing.models import NumberSeries


def next_number(series: str) -> str:
    """The series' next number; call inside the transaction that uses it."""
    counter, _ = NumberSeries.objects.get_or_create(name=series)
    counter = NumberSeries.objects.select_for_update().get(pk=counter.pk)
    number = f"{series}-{counter.next_value:06d}"
    counter.next_value += 1
    counter.save(update_fields=["next_value"])
    return number
