"""The "Renew now" page of a subscription, in the quotes admin (subscriptions must not import
quotes: the subscription page links here by URL name, admin:quotes_quote_renew)."""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.errors import DomainError
from quotes.renewals import (
    last_term_start,
    months_between,
    renewal_quote_create,
    renewal_quote_of,
    uplift_note,
    uplift_of,
)
from subscriptions.models import Subscription


class QuoteRenewalsMixin:
    def get_urls(self):
        urls = [
            path(
                "renew/<int:subscription_id>/",
                self.admin_site.admin_view(self.renew_view),
                name="quotes_quote_renew",
            )
        ]
        return urls + super().get_urls()

    def renew_view(self, request, subscription_id):
        """Open the renewal quote of the term in progress, or (confirmed) draft it."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        subscription = get_object_or_404(
            Subscription.objects.select_related("customer", "plan"), pk=subscription_id
        )
        back = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
        existing = renewal_quote_of(subscription)
        if existing is not None:
            return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[existing.pk]))
        if request.method == "POST":
            try:
                quote = renewal_quote_create(subscription=subscription, by=request.user)
            except DomainError as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(back)
            messages.success(request, f"Renewal quote {quote.number} drafted. {quote.notes}")
            return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[quote.pk]))
        end = subscription.term_end_date
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Renew {subscription.external_id}",
            "subscription": subscription,
            "last_day": end - dt.timedelta(days=1),
            "term_months": months_between(last_term_start(subscription), end),
            "note": uplift_note(*uplift_of(subscription)),
        }
        return TemplateResponse(request, "admin/quotes/quote/renew.html", context)
