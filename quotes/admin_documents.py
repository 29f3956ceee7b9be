"""The quote admin's documents: the PDF download and the "Send to customer" page.

`QuoteDocumentsMixin` goes first in QuoteAdmin's bases; it adds its URLs before the admin's own
and gives `document_buttons(request, quote)`, the buttons the change page shows.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core.errors import DomainError
from quotes.documents import quote_filename, quote_pdf
from quotes.models import Quote
from quotes.sending import quote_send


class SendQuoteForm(forms.Form):
    to = forms.EmailField(
        label="Recipient",
        error_messages={"invalid": "Enter an email address like name@company.com."},
        help_text="The customer's billing email by default.",
    )
    message = forms.CharField(
        label="Message (optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Added to the email above the link to accept the quote in the portal.",
    )


def unsendable(quote: Quote) -> str | None:
    """Why the quote cannot be sent as it stands (the page says it before the rep tries)."""
    if quote.status in (Quote.Status.DRAFT, Quote.Status.IN_REVIEW):
        return (
            f"Quote {quote.number} is {quote.get_status_display().lower()}: it is sent once "
            "approved (submit it for approval first)."
        )
    if quote.status not in (Quote.Status.APPROVED, Quote.Status.SENT):
        return (
            f"Quote {quote.number} is {quote.get_status_display().lower()}: only an approved "
            "quote is sent (make a new version to send it again)."
        )
    return None


class QuoteDocumentsMixin:
    """PDF (`<id>/pdf/`, quotes_quote_pdf) and sending (`<id>/send/`, quotes_quote_send)."""

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.quote_pdf_view),
                name="quotes_quote_pdf",
            ),
            path(
                "<int:pk>/send/",
                self.admin_site.admin_view(self.quote_send_view),
                name="quotes_quote_send",
            ),
        ]
        return urls + super().get_urls()

    def _quote(self, request, pk) -> Quote:
        quote = self.get_object(request, str(pk))
        if quote is None:
            raise Http404(f"No quote with id {pk}.")
        return quote

    def quote_pdf_view(self, request, pk):
        quote = self._quote(request, pk)
        if not self.has_view_permission(request, quote):
            raise PermissionDenied
        response = HttpResponse(quote_pdf(quote), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{quote_filename(quote)}"'
        return response

    def quote_send_view(self, request, pk):
        quote = self._quote(request, pk)
        if not self.has_change_permission(request, quote):
            raise PermissionDenied
        change_url = reverse("admin:quotes_quote_change", args=[quote.pk])
        form = SendQuoteForm(
            request.POST or None, initial={"to": quote.sent_to or quote.customer.billing_email}
        )
        if request.method == "POST" and form.is_valid():
            accept_url = request.build_absolute_uri(reverse("portal:quote", args=[quote.pk]))
            try:
                quote = quote_send(
                    quote=quote,
                    by=request.user,
                    to=form.cleaned_data["to"],
                    accept_url=accept_url,
                    message=form.cleaned_data["message"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"Quote {quote.number} was sent to {quote.sent_to} with its PDF and the link "
                    "to accept it in the portal.",
                )
                return redirect(change_url)
        title = f"Send {quote.number} to {quote.customer}"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "content_title": title,
            "opts": self.model._meta,
            "model_admin": self,
            "original": quote,
            "quote": quote,
            "form": form,
            "problem": unsendable(quote),
            "change_url": change_url,
            "pdf_url": reverse("admin:quotes_quote_pdf", args=[quote.pk]),
        }
        status = 422 if request.method == "POST" else 200
        return TemplateResponse(request, "admin/quotes/quote/send.html", context, status=status)

    def document_buttons(self, request, quote) -> list[dict]:
        """The change page's buttons (links): the PDF, and sending by email while the quote is
        approved or sent and the user may change it."""
        buttons = [
            {
                "action": "pdf",
                "label": "Quote PDF",
                "how": "link",
                "url": reverse("admin:quotes_quote_pdf", args=[quote.pk]),
            }
        ]
        if quote.status in (Quote.Status.APPROVED, Quote.Status.SENT) and (
            self.has_change_permission(request, quote)
        ):
            buttons.append(
                {
                    "action": "send",
                    "label": "Send again"
                    if quote.status == Quote.Status.SENT
                    else "Send to customer",
                    "how": "link",
                    "url": reverse("admin:quotes_quote_send", args=[quote.pk]),
                }
            )
        return buttons
