"""The admin home (unfold's DASHBOARD_CALLBACK): reporting's figures per role, plus revrec's
revenue tiles for finance who may see the ledger. Here because config imports anything, while
reporting does not import revrec (DESIGN.md: nothing imports revrec)."""

from reporting import dashboard as reporting
from revrec.admin_ledger import may_see_ledger
from revrec.dashboard import revenue_tiles


def dashboard_callback(request, context: dict) -> dict:
    context = reporting.dashboard_callback(request, context)
    if context.get("show_finance") and may_see_ledger(request.user):
        context["revenue_kpis"] = revenue_tiles(context["as_of"], context["reporting_currency"])
    return context
