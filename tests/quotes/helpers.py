"""The quote page's POST data, as the admin's change form sends it."""

from quotes.admin_lines import LINE_FIELDS

HEADER = {
    "title": "Acme 2026",
    "start_date": "2026-03-15",
    "term_months": "12",
    "valid_until": "2026-03-31",
    "subscription_external_id": "sub_acme_2026",
}


def _value(value):
    return "" if value is None else value


def lines_data(lines, *, extra=()):
    """The inline's POST data for `lines` (saved) and `extra` (dicts of new lines' fields)."""
    data = {
        "lines-TOTAL_FORMS": str(len(lines) + len(extra)),
        "lines-INITIAL_FORMS": str(len(lines)),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for i, line in enumerate(lines):
        data |= {f"lines-{i}-id": line.pk, f"lines-{i}-quote": line.quote_id}
        data |= {
            f"lines-{i}-{name}": _value(
                getattr(line, name + "_id", None) if name == "charge" else getattr(line, name)
            )
            for name in LINE_FIELDS
        }
    for i, fields in enumerate(extra, start=len(lines)):
        data |= {f"lines-{i}-{name}": value for name, value in fields.items()}
    return data


def change_data(quote, lines=None, *, extra=(), **header):
    """The change form of `quote` as shown (its lines, or `lines`), with `header` changes."""
    lines = list(quote.lines.order_by("position", "id")) if lines is None else lines
    data = {"customer": quote.customer_id, "plan": quote.plan_id, **HEADER, **header}
    return data | lines_data(lines, extra=extra)
