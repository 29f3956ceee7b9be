from django.contrib.auth.views import LogoutView
from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices/<str:number>/", views.invoice_detail, name="invoice"),
    path("invoices/<str:number>/pdf/", views.invoice_download, name="invoice_pdf"),
    path("credit-notes/<str:number>/pdf/", views.credit_note_download, name="credit_note_pdf"),
    path("statement/", views.statement, name="statement"),
    path("statement/pdf/", views.statement_download, name="statement_pdf"),
    path(
        "subscriptions/<str:external_id>/usage/",
        views.subscription_usage,
        name="subscription_usage",
    ),
    path(
        "subscriptions/<str:external_id>/usage.csv",
        views.subscription_usage_csv,
        name="subscription_usage_csv",
    ),
]

urlpatterns += [
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/delete/", views.alert_delete, name="alert_delete"),
]

urlpatterns += [
    path("quotes/", views.quote_list, name="quotes"),
    path("quotes/<int:pk>/", views.quote_detail, name="quote"),
    path("quotes/<int:pk>/pdf/", views.quote_download, name="quote_pdf"),
]
