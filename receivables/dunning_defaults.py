"""The default dunning policy, seeded by receivables/migrations/0002_dunning.py."""

DEFAULT_STEPS = [
    (
        -3,
        "Friendly reminder",
        "Invoice {{ invoice.number }} is due on {{ due_date }}",
        "Hello {{ customer.name }},\n\nA friendly reminder: invoice {{ invoice.number }} "
        "({{ amount_due }}) is due on {{ due_date }}. It is attached, and in your billing portal: "
        "{{ portal_url }}\n\nIf you have already paid, thank you, and please ignore this email.\n",
    ),
    (
        1,
        "Payment overdue",
        "Invoice {{ invoice.number }} is overdue",
        "Hello {{ customer.name }},\n\nInvoice {{ invoice.number }} was due on {{ due_date }} and "
        "{{ amount_due }} is still unpaid. The invoice is attached, and in your billing portal: "
        "{{ portal_url }}\n\nIf you have already paid, thank you, and please ignore this email.\n",
    ),
    (
        7,
        "Second notice",
        "Second notice: invoice {{ invoice.number }} is overdue",
        "Hello {{ customer.name }},\n\nInvoice {{ invoice.number }} was due on {{ due_date }}: "
        "{{ amount_due }} is still unpaid. Please pay it or tell us if something is wrong with it. "
        "It is attached, and in your billing portal: {{ portal_url }}\n",
    ),
    (
        14,
        "Final notice",
        "Final notice: invoice {{ invoice.number }}",
        "Hello {{ customer.name }},\n\nThis is our final notice: invoice {{ invoice.number }}, "
        "due on {{ due_date }}, still has {{ amount_due }} unpaid. Please pay it now or "
        "contact us. It is attached, and in your billing portal: {{ portal_url }}\n",
    ),
]


def ensure_default_policy(policy_model, step_model):
    """The Default policy and its four steps, unless a policy of that name exists (used by the
    migration, with its historical models)."""
    policy, created = policy_model.objects.get_or_create(name="Default")
    if created:
        for days, name, subject, body in DEFAULT_STEPS:
            step_model.objects.create(
                policy=policy, days_from_due=days, name=name, subject=subject, body=body
            )
