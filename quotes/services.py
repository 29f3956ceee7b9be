"""Every write to a quote: its lines from the plan, its moves through review, approval, sending
and signing (each recorded with who, when and why), new versions, and its conversion into a
subscription — in one transaction and exactly once."""

from decimal import Decimal

from django.db import transaction

from catalog.selectors import charges_in_force
from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_money
from core.periods import add_months
from quotes import pricing, validation
from quotes.models import (
    ApprovalRule,
    Quote,
    QuoteLine,
    QuoteStatusChange,
)
from quotes.totals import NO_EXTRAS, LineExtras, QuoteTotals, quote_totals, read_extras
from subscriptions.changes import subscription_renew
from subscriptions.services import CreditSpec, ItemSpec, PhaseSpec, subscription_create

ZERO = Decimal(0)


def quote_populate_lines(*, quote: Quote, replace: bool = False) -> Quote:
    """Give a quote without lines one line per charge of its plan, at catalog prices.

    With replace, a draft's lines are first removed (its plan changed)."""
    if replace and quote.status == Quote.Status.DRAFT:
        quote.lines.all().delete()
    if quote.lines.exists():
        return quote
    problem = quote.currency_problem()
    if problem:
        raise ValidationError(problem)
    charges = charges_in_force(
        plan=quote.plan, currency=str(quote.customer.currency), on=quote.start_date
    )
    QuoteLine.objects.bulk_create(
        QuoteLine(
            quote=quote,
            kind=QuoteLine.Kind.USAGE if charge.metric_id else QuoteLine.Kind.RECURRING,
            charge=charge,
            description=charge.name,
            quantity=charge.default_quantity,
            position=charge.position,
        )
        for charge in charges
    )
    return quote


def _lines(quote: Quote) -> list[QuoteLine]:
    lines = list(quote.lines.select_related("charge").prefetch_related("charge__tiers"))
    for line in lines:
        line.quote = quote
    return lines


def quote_problems(
    quote: Quote, lines: list[QuoteLine], extras: dict[int, LineExtras] | None = None
) -> list[str]:
    """What stops the quote from being submitted, sent or accepted, each naming its line."""
    if not lines:
        return [f"Quote {quote.number} has no lines: add at least one."]
    problems = []
    extras = read_extras(lines) if extras is None else extras
    for number, line in enumerate(lines, start=1):
        label = f"Line {number} ({line.name})"
        found = [*validation.line_problems(line).values()]
        line_extras = extras.get(line.pk, NO_EXTRAS)
        found += validation.tier_problems(line, line_extras.tiers)
        found += validation.phase_problems(
            line, line_extras.phases, term_months=quote.term_months, interval=quote.interval
        )
        problems += [f"{label}: {message}" for message in found]
    return problems


def approval_reasons(quote: Quote, totals: QuoteTotals) -> list[str]:
    """Why the quote needs finance's approval, one reason per rule it trips (active rules)."""
    reasons = []
    currency = quote.currency
    for rule in ApprovalRule.objects.filter(active=True):
        threshold = rule.threshold
        if rule.kind in ApprovalRule.MONEY and rule.currency != currency:
            continue
        money = format_money(threshold, currency)
        if rule.kind == ApprovalRule.Kind.LINE_DISCOUNT_ABOVE:
            for figures in totals.lines:
                if figures.discount_percent > threshold:
                    reasons.append(
                        f"{rule.name}: '{figures.line.name}' is discounted "
                        f"{_percent(figures.discount_percent)}, above {_percent(threshold)}."
                    )
        elif rule.kind == ApprovalRule.Kind.TOTAL_DISCOUNT_ABOVE:
            if totals.discount_percent > threshold:
                reasons.append(
                    f"{rule.name}: the total discount against list is "
                    f"{_percent(totals.discount_percent)} "
                    f"({format_money(totals.discount, currency)}), above {_percent(threshold)}."
                )
        elif rule.kind == ApprovalRule.Kind.TCV_ABOVE and totals.tcv > threshold:
            reasons.append(
                f"{rule.name}: the total contract value {format_money(totals.tcv, currency)} "
                f"is above {money}."
            )
        elif rule.kind == ApprovalRule.Kind.ACV_ABOVE and totals.acv > threshold:
            reasons.append(
                f"{rule.name}: the annual contract value {format_money(totals.acv, currency)} "
                f"is above {money}."
            )
        elif rule.kind == ApprovalRule.Kind.MRR_BELOW and totals.mrr_first < threshold:
            reasons.append(
                f"{rule.name}: the monthly recurring revenue "
                f"{format_money(totals.mrr_first, currency)} is below {money}."
            )
        elif rule.kind == ApprovalRule.Kind.PAYMENT_TERMS_ABOVE and quote.payment_terms > threshold:
            reasons.append(
                f"{rule.name}: payment terms of {quote.payment_terms} days are longer than "
                f"{threshold.normalize():f} days."
            )
    return reasons


def _percent(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')).normalize():f} %"


def _locked(quote: Quote) -> Quote:
    """The quote, re-read under its row lock. Only the quote's row is locked (PostgreSQL locks
    no nullable side of a join), and its subscription is read after the lock, not joined: a
    join would come from the snapshot taken before a concurrent acceptance committed."""
    return (
        Quote.objects.select_for_update(of=("self",))
        .select_related("customer", "plan")
        .get(pk=quote.pk)
    )


def _move(quote: Quote, target: str, *, by=None, reason: str = "") -> None:
    """Move the quote to `target` if its state allows it, and record who, when and why."""
    if target not in Quote.TRANSITIONS[quote.status]:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}; it cannot become "
            f"{Quote.Status(target).label.lower()}."
        )
    QuoteStatusChange.objects.create(
        quote=quote,
        from_status=quote.status,
        to_status=target,
        by=by if by is not None and by.is_authenticated else None,
        at=clock.now(),
        reason=reason,
    )
    quote.status = target


def _check(quote: Quote) -> QuoteTotals:
    """Refuse a quote with problems (all of them listed); return its totals."""
    lines = _lines(quote)
    problems = quote_problems(quote, lines)
    if problems:
        raise ValidationError(" ".join(problems), details=problems)
    return quote_totals(quote, lines)


def _evaluate(quote: Quote, by, verb: str) -> None:
    """Approved when no rule applies; in review, with the reasons, otherwise."""
    totals = _check(quote)
    reasons = approval_reasons(quote, totals)
    quote.approval_reasons = reasons
    if reasons:
        _move(quote, Quote.Status.IN_REVIEW, by=by, reason=f"{verb}: " + " ".join(reasons))
    else:
        _move(quote, Quote.Status.APPROVED, by=by, reason=f"{verb}: no approval rule applies.")


@transaction.atomic
def quote_submit(*, quote: Quote, by=None) -> Quote:
    """Submit a draft for approval: approved at once when no rule applies, else in review."""
    quote = _locked(quote)
    if quote.status != Quote.Status.DRAFT:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: only a draft is "
            "submitted for approval."
        )
    _evaluate(quote, by, "Submitted")
    quote.save(update_fields=["status", "approval_reasons"])
    return quote


@transaction.atomic
def quote_edited(*, quote: Quote, by=None) -> Quote:
    """An approved quote was edited: it goes through the rules again (back to review when one
    applies; it stays approved when none does). An edit that leaves the quote with a problem (a
    new term its ramp no longer covers, say) sends it back to draft, the problems as the reason:
    it cannot be sent or accepted until fixed and submitted again."""
    quote = _locked(quote)
    if quote.status != Quote.Status.APPROVED:
        return quote
    lines = _lines(quote)
    problems = quote_problems(quote, lines)
    if problems:
        quote.approval_reasons = []
        _move(quote, Quote.Status.DRAFT, by=by, reason="Edited: " + " ".join(problems))
        quote.save(update_fields=["status", "approval_reasons"])
        return quote
    totals = quote_totals(quote, lines)
    reasons = approval_reasons(quote, totals)
    quote.approval_reasons = reasons
    if reasons:
        _move(quote, Quote.Status.IN_REVIEW, by=by, reason="Edited: " + " ".join(reasons))
    quote.save(update_fields=["status", "approval_reasons"])
    return quote


def _approver(by) -> None:
    if by is None or not by.has_perm("quotes.approve_quote"):
        raise Conflict(
            "Only finance (the permission to approve quotes) approves or rejects quotes."
        )


@transaction.atomic
def quote_approve(*, quote: Quote, by, comment: str = "") -> Quote:
    _approver(by)
    quote = _locked(quote)
    if quote.status != Quote.Status.IN_REVIEW:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: only a quote in "
            "review is approved."
        )
    _check(quote)
    _move(quote, Quote.Status.APPROVED, by=by, reason=comment.strip() or "Approved.")
    quote.save(update_fields=["status"])
    return quote


@transaction.atomic
def quote_reject(*, quote: Quote, by, comment: str) -> Quote:
    """Send a quote in review back to its rep as a draft, saying why."""
    _approver(by)
    if not comment or not comment.strip():
        raise ValidationError("Say why the quote is rejected: the rep reads it to fix the quote.")
    quote = _locked(quote)
    if quote.status != Quote.Status.IN_REVIEW:
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: only a quote in "
            "review is rejected."
        )
    _move(quote, Quote.Status.DRAFT, by=by, reason=comment.strip())
    quote.save(update_fields=["status"])
    return quote


def _not_expired(quote: Quote) -> None:
    if quote.valid_until < clock.today():
        raise ValidationError(
            f"Quote {quote.number} expired on {quote.valid_until}: extend its validity or make a "
            f"new quote before accepting."
        )


@transaction.atomic
def quote_mark_sent(*, quote: Quote, by=None, to: str = "") -> Quote:
    """Record that the approved quote went to the customer (quotes.sending emails it)."""
    quote = _locked(quote)
    if quote.status in (Quote.Status.DRAFT, Quote.Status.IN_REVIEW):
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: it is sent once "
            "approved (submit it for approval first)."
        )
    _check(quote)
    _move(quote, Quote.Status.SENT, by=by, reason=f"Sent to {to}." if to else "Marked as sent.")
    quote.sent_at = clock.now()
    quote.sent_to = to
    quote.save(update_fields=["status", "sent_at", "sent_to"])
    return quote


@transaction.atomic
def quote_decline(*, quote: Quote, by=None, reason: str = "") -> Quote:
    quote = _locked(quote)
    _move(quote, Quote.Status.DECLINED, by=by, reason=reason)
    quote.save(update_fields=["status"])
    return quote


@transaction.atomic
def quote_expire(*, quote: Quote, by=None) -> Quote:
    quote = _locked(quote)
    _move(quote, Quote.Status.EXPIRED, by=by, reason=f"Valid until {quote.valid_until}.")
    quote.save(update_fields=["status"])
    return quote


def quotes_expire_overdue(*, today=None) -> int:
    """Expire every open quote whose validity has passed (the daily task)."""
    today = today or clock.today()
    overdue = Quote.objects.filter(status__in=Quote.OPEN, valid_until__lt=today)
    for quote in overdue:
        quote_expire(quote=quote)
    return len(overdue)


@transaction.atomic
def quote_new_version(*, quote: Quote, by=None) -> Quote:
    """A new draft copying the quote (lines, tiers, phases); an open original is superseded."""
    quote = _locked(quote)
    if quote.status in (Quote.Status.DRAFT, Quote.Status.ACCEPTED, Quote.Status.SUPERSEDED):
        raise Conflict(
            f"Quote {quote.number} is {quote.get_status_display().lower()}: a new version is made "
            "of a quote in review, approved, sent, declined or expired."
        )
    newer = quote.revisions.first()
    if newer is not None:
        raise Conflict(f"Quote {quote.number} already has a new version: {newer.number}.")
    lines = list(quote.lines.prefetch_related("tiers", "phases"))
    copy = Quote.objects.get(pk=quote.pk)
    copy.pk = copy.id = None
    copy._state.adding = True
    copy.revision_of = quote
    copy.version = quote.version + 1
    copy.status = Quote.Status.DRAFT
    copy.subscription = None
    copy.approval_reasons = []
    copy.sent_at = copy.accepted_at = None
    copy.sent_to = copy.accepted_by_name = copy.accepted_by_title = ""
    copy.owner = copy.owner or by
    copy.save()
    for line in lines:
        tiers, phases = list(line.tiers.all()), list(line.phases.all())
        line.pk = line.id = None
        line.quote = copy
        line._state.adding = True
        line.save()
        for child in tiers + phases:
            child.pk = child.id = None
            child.line = line
            child._state.adding = True
            child.save()
    QuoteStatusChange.objects.create(
        quote=copy,
        from_status=Quote.Status.DRAFT,
        to_status=Quote.Status.DRAFT,
        by=by if by is not None and by.is_authenticated else None,
        at=clock.now(),
        reason=f"New version of {quote.number}.",
    )
    if Quote.Status.SUPERSEDED in Quote.TRANSITIONS[quote.status]:
        _move(quote, Quote.Status.SUPERSEDED, by=by, reason=f"Replaced by {copy.number}.")
        quote.save(update_fields=["status"])
    return copy


def item_specs(quote: Quote, lines: list[QuoteLine], extras: dict[int, LineExtras]):
    """The subscription's items (net terms, list terms, discounts, ramp phases, one-time fees)
    and prepaid credits, from the quote's lines: what the subscription bills is what the quote
    priced (quotes.pricing)."""
    items, credits = [], []
    for line in lines:
        line_extras = extras.get(line.pk, NO_EXTRAS)
        if line.kind == QuoteLine.Kind.CREDIT:
            granted = line.quantity * line.unit_price
            credits.append(CreditSpec(amount=granted, note=f"{line.name} ({quote.number})"))
        phases = [
            PhaseSpec(
                start=add_months(quote.start_date, phase.start_month - 1),
                end=add_months(quote.start_date, phase.end_month),
                quantity=phase.quantity,
                pricing=pricing.net_pricing(line, phase=phase),
            )
            for phase in line_extras.phases
        ]
        items.append(
            ItemSpec(
                charge=None if pricing.is_once(line) else line.charge,
                quantity=line.quantity,
                name=line.name,
                pricing=pricing.net_pricing(line, tiers=line_extras.tiers),
                list_pricing=pricing.period_list_pricing(line),
                discount_percent=line.discount_percent,
                discount_amount=line.discount_amount,
                phases=phases,
                one_time=pricing.is_once(line),
            )
        )
    return items, credits


@transaction.atomic
def quote_accept(
    *, quote: Quote, by=None, name: str = "", title: str = "", reason: str = ""
) -> Quote:
    """Accept the quote and create its subscription — in one transaction, exactly once.

    An approved or sent quote is accepted; a draft only when no approval rule applies (it is
    approved on the way, and that move is recorded too). A renewal quote extends its contract
    by a new term instead (quotes.renewals); an amendment changes its contract from its
    effective date (quotes.amendments)."""
    quote = _locked(quote)
    if quote.status == Quote.Status.ACCEPTED:
        made = {Quote.Kind.RENEWAL: "renewed", Quote.Kind.AMENDMENT: "amended"}.get(
            quote.kind, "created"
        )
        raise Conflict(
            f"Quote {quote.number} was already accepted: it {made} subscription "
            f"{(quote.subscription or quote.contract).external_id}."
        )
    if quote.status == Quote.Status.IN_REVIEW:
        raise Conflict(
            f"Quote {quote.number} is waiting for finance's approval: it is accepted once approved."
        )
    if quote.status == Quote.Status.DRAFT:
        _not_expired(quote)
        _evaluate(quote, by, "Submitted at acceptance")
        if quote.status == Quote.Status.IN_REVIEW:
            raise Conflict(
                f"Quote {quote.number} needs finance's approval before it is accepted: "
                + " ".join(quote.approval_reasons)
            )
    if Quote.Status.ACCEPTED not in Quote.TRANSITIONS[quote.status]:
        _move(quote, Quote.Status.ACCEPTED, by=by)  # refuses, saying why
    _not_expired(quote)
    lines = _lines(quote)
    extras = read_extras(lines)
    problems = quote_problems(quote, lines, extras)
    if problems:
        raise ValidationError(" ".join(problems), details=problems)
    signed = f" by {name.strip()}" + (f", {title.strip()}" if title.strip() else "") if name else ""
    _move(quote, Quote.Status.ACCEPTED, by=by, reason=reason or f"Accepted{signed}.")
    if quote.kind == Quote.Kind.AMENDMENT:
        from quotes.amendments import amendment_apply  # it builds on this module

        amendment_apply(quote=quote, lines=lines, extras=extras, by=by)
        return _accepted(quote, name, title)
    items, credits = item_specs(quote, lines, extras)
    if quote.kind == Quote.Kind.RENEWAL:
        once = [line.name for line in lines if pricing.is_once(line)]
        if once:
            raise ValidationError(
                f"A renewal renews recurring fees and usage only: remove {', '.join(once)} "
                "(quote a one-time fee or prepaid credits as an amendment)."
            )
        if quote.start_date != quote.contract.term_end_date:
            raise ValidationError(
                f"A renewal starts the day the term ends, {quote.contract.term_end_date}, not "
                f"{quote.start_date}: set the quote's start date back."
            )
        subscription_renew(
            subscription=quote.contract,
            term_months=quote.term_months,
            items=items,
            expected_revision=quote.base_revision,
            by=by,
            source=quote.number,
            reason=reason,
            renewal="renew" if quote.auto_renew else "end",
        )
    else:
        quote.subscription = subscription_create(
            customer=quote.customer,
            plan=quote.plan,
            external_id=quote.subscription_external_id
            or f"sub_{quote.customer.external_id}_{quote.pk}",
            start_date=quote.start_date,
            term_months=quote.term_months,
            billing_interval_months=quote.interval,
            items=items,
            credits=credits,
            payment_terms_days=quote.payment_terms_days,
        )
    return _accepted(quote, name, title)


def _accepted(quote: Quote, name: str, title: str) -> Quote:
    quote.accepted_at = clock.now()
    quote.accepted_by_name = name.strip()
    quote.accepted_by_title = title.strip()
    quote.save(
        update_fields=[
            "status",
            "subscription",
            "accepted_at",
            "accepted_by_name",
            "accepted_by_title",
            "approval_reasons",
        ]
    )
    return quote
