from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api import not_found
from invoicing.admin_contract import cancel_view, quantity_view
from invoicing.admin_views import shadow_billing_view
from invoicing.api import CurrentUsageView, UpcomingInvoiceView
from invoicing.contract_api import (
    SubscriptionCancelView,
    SubscriptionItemQuantityView,
    SubscriptionItemsView,
)
from metering.api import EventBatchView, EventView
from receivables.admin_aging import aging_view
from receivables.admin_payments import credit_balance_view, credit_balances_view
from receivables.admin_views import statement_view
from receivables.api import CustomerBalanceView, PaymentsView, PaymentView
from revrec.admin_reports import revenue_view, rpo_view, unbilled_view, waterfall_view

# The header and title are django-unfold's (settings.UNFOLD), which overrides the site's own.
admin.site.index_title = "Catalog, quotes, billing and revenue"

api_v1 = [
    path("events", EventView.as_view(), name="events"),
    path("events/batch", EventBatchView.as_view(), name="events-batch"),
    path(
        "customers/<str:external_customer_id>/current_usage",
        CurrentUsageView.as_view(),
        name="current-usage",
    ),
    path(
        "customers/<str:external_customer_id>/upcoming_invoice",
        UpcomingInvoiceView.as_view(),
        name="upcoming-invoice",
    ),
    path(
        "subscriptions/<str:external_id>/items",
        SubscriptionItemsView.as_view(),
        name="subscription-items",
    ),
    path(
        "subscriptions/<str:external_id>/items/<int:item_id>/quantity",
        SubscriptionItemQuantityView.as_view(),
        name="subscription-item-quantity",
    ),
    path(
        "subscriptions/<str:external_id>/cancel",
        SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path("payments", PaymentsView.as_view(), name="payments"),
    path("payments/<int:payment_id>", PaymentView.as_view(), name="payment"),
    path(
        "customers/<str:external_customer_id>/balance",
        CustomerBalanceView.as_view(),
        name="customer-balance",
    ),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/portal/", permanent=False)),
    # Before admin.site.urls, whose catch-all would answer it with a 404.
    path(
        "admin/invoicing/shadow-billing/",
        admin.site.admin_view(shadow_billing_view),
        name="invoicing-shadow-billing",
    ),
    path("admin/receivables/aging/", admin.site.admin_view(aging_view), name="receivables-aging"),
    path(
        "admin/receivables/credit-balances/",
        admin.site.admin_view(credit_balances_view),
        name="receivables-credit-balances",
    ),
    path(
        "admin/receivables/credit-balances/<int:customer_id>/",
        admin.site.admin_view(credit_balance_view),
        name="receivables-credit-balance",
    ),
    path(
        "admin/subscriptions/subscription/<int:pk>/change-quantity/",
        admin.site.admin_view(quantity_view),
        name="subscriptions-change-quantity",
    ),
    path(
        "admin/subscriptions/subscription/<int:pk>/cancel/",
        admin.site.admin_view(cancel_view),
        name="subscriptions-cancel",
    ),
    path(
        "admin/receivables/statement/<int:customer_id>/",
        admin.site.admin_view(statement_view),
        name="receivables-statement",
    ),
    path(
        "admin/revrec/reports/revenue/",
        admin.site.admin_view(revenue_view),
        name="revrec-revenue-report",
    ),
    path(
        "admin/revrec/reports/waterfall/",
        admin.site.admin_view(waterfall_view),
        name="revrec-waterfall",
    ),
    path(
        "admin/revrec/reports/unbilled/",
        admin.site.admin_view(unbilled_view),
        name="revrec-unbilled",
    ),
    path("admin/revrec/reports/rpo/", admin.site.admin_view(rpo_view), name="revrec-rpo"),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last: any other path under /api/v1/ is a JSON 404, also with DEBUG on (handler404 is not
    # used then) and without an APPEND_SLASH redirect (which breaks a POST).
    re_path(r"^api/v1/", not_found),
]

handler404 = "core.api.handler404"  # JSON under /api/, Django's page elsewhere
