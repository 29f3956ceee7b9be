"""Send an approved quote to the customer: the email with the PDF and the link to accept it online.

The quote moves to sent and the email goes out in one transaction, the email last: when the mail
server refuses the message, the transaction rolls back and the quote is still approved, so the rep
is never told a quote was sent that nobody received. (Other emails — invoices — go after commit
because they must not undo a finalized invoice; here the email is the point of the move.)
"""

import logging
import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError as FieldValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string

from core import clock
from core.errors import Conflict, ValidationError
from quotes import services
from quotes.documents import quote_filename, quote_pdf
from quotes.models import Quote, QuoteStatusChange

logger = logging.getLogger(__name__)


def _address(to: str) -> str:
    to = (to or "").strip()
    if not to:
        raise ValidationError(
            "Enter the email address to send the quote to (the customer's billing email by "
            "default)."
        )
    try:
        validate_email(to)
    except FieldValidationError:
        raise ValidationError(
            f"“{to}” is not an email address: enter one like name@company.com."
        ) from None
    return to


@transaction.atomic
def quote_send(*, quote: Quote, by, to: str, accept_url: str, message: str = "") -> Quote:
    """Email the quote (PDF attached, link to `accept_url`) to `to` and record it as sent.

    An approved quote becomes sent; a sent one is sent again (recorded, its status unchanged).
    A draft or a quote in review is refused with quotes.services' message.
    """
    to = _address(to)
    quote.refresh_from_db(fields=["status", "valid_until"])
    if quote.status in Quote.OPEN and quote.valid_until < clock.today():
        raise ValidationError(
            f"Quote {quote.number} expired on {quote.valid_until:%b} {quote.valid_until.day}, "
            f"{quote.valid_until.year}: extend its validity (or make a new version) before "
            "sending it."
        )
    if quote.status == Quote.Status.SENT:
        quote = services._locked(quote)
        QuoteStatusChange.objects.create(
            quote=quote,
            from_status=quote.status,
            to_status=quote.status,
            by=by if by is not None and by.is_authenticated else None,
            at=clock.now(),
            reason=f"Sent again to {to}.",
        )
        quote.sent_at, quote.sent_to = clock.now(), to
        quote.save(update_fields=["sent_at", "sent_to"])
    elif quote.status in (Quote.Status.DRAFT, Quote.Status.IN_REVIEW, Quote.Status.APPROVED):
        quote = services.quote_mark_sent(quote=quote, by=by, to=to)
    else:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: only an approved "
            "quote is sent (make a new version to send it again)."
        )
    _email(quote, to=to, accept_url=accept_url, message=message.strip(), by=by)
    return quote


def _email(quote: Quote, *, to: str, accept_url: str, message: str, by) -> None:
    company = settings.BILLING_COMPANY
    context = {
        "quote": quote,
        "customer": quote.customer,
        "company": company,
        "accept_url": accept_url,
        "message": message,
        "sender": (by.get_full_name() or by.get_username()) if by is not None else "",
    }
    reply_to = [by.email] if by is not None and getattr(by, "email", "") else []
    email = EmailMultiAlternatives(
        subject=f"Quote {quote.number} from {company['name']}"
        + (f": {quote.title}" if quote.title else ""),
        body=render_to_string("quotes/email/quote_sent.txt", context),
        from_email=company["email"],
        to=[to],
        reply_to=reply_to,
    )
    email.attach_alternative(render_to_string("quotes/email/quote_sent.html", context), "text/html")
    email.attach(quote_filename(quote), quote_pdf(quote), "application/pdf")
    try:
        email.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("quote %s not sent to %s: %s", quote.number, to, exc)
        raise ValidationError(
            f"The email to {to} could not be sent ({exc}). Quote {quote.number} was not sent: "
            "check the address and try again, or ask your administrator to check the mail "
            "server."
        ) from exc
