"""What every portal page's frame shows: the seller's name and logo (settings.BILLING_COMPANY)."""

from django.conf import settings


def billing_company(request) -> dict:
    company = settings.BILLING_COMPANY
    return {"company_name": company["name"], "company_logo_url": company.get("logo_url", "")}
