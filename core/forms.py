from django import forms

from core.money import plain


class PlainDecimalField(forms.DecimalField):
    """Shows 99 and 0.002, not 99.000000000000 and 0.002000000000 (prices keep 12 places)."""

    def prepare_value(self, value):
        value = super().prepare_value(value)
        return plain(value) if value not in (None, "") and not isinstance(value, str) else value
