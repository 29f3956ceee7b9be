"""The sales rep's and the approver's screens: the quote page (header, lines, live totals, status
history, workflow buttons), the quote list with its actions and the approval queue, and finance's
approval rules. The line's own page (tiers and ramp) is quotes.admin_lines'.

Every move of a quote goes through quotes.services; its DomainError message is shown to the
person (messages framework), and a button on an editable quote saves the rep's edits first."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RelatedDropdownFilter
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from core.admin import LINK_CLASSES
from core.errors import DomainError
from core.formatting import format_money, format_price
from quotes import services
from quotes.admin_amendments import QuoteAmendmentsMixin
from quotes.admin_documents import QuoteDocumentsMixin
from quotes.admin_lines import (  # noqa: F401 (QuoteLineAdmin registers itself)
    LINES_PER_PAGE,
    ChargeField,
    QuoteLineAdmin,
    QuoteLineInline,
    charge_choices,
    quote_was_edited,
)
from quotes.admin_renewals import QuoteRenewalsMixin
from quotes.admin_totals import panel_context, posted_lines
from quotes.amendments import amendment_populate_lines
from quotes.models import ApprovalRule, Quote, QuoteLine
from quotes.totals import LineExtras, phases_of, quote_totals, read_extras, tiers_as_pricing

S = Quote.Status
STATUS_LABEL = {
    S.DRAFT: "",
    S.IN_REVIEW: "warning",
    S.APPROVED: "info",
    S.SENT: "primary",
    S.ACCEPTED: "success",
    S.DECLINED: "danger",
    S.EXPIRED: "danger",
    S.SUPERSEDED: "",
}


def status_label(quote: Quote) -> str:
    return render_to_string(
        "unfold/helpers/label.html",
        {"text": quote.get_status_display(), "type": STATUS_LABEL.get(quote.status, "")},
    )


# --- workflow: what each button or page does -------------------------------------------------


class CommentForm(forms.Form):
    comment = forms.CharField(
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Recorded in the quote's history, read by the rep.",
    )


class RejectForm(forms.Form):
    comment = forms.CharField(
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Say what to change: the quote goes back to the rep as a draft.",
    )


class AcceptForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        widget=UnfoldAdminTextInputWidget,
        help_text="Who signed for the customer.",
    )
    title = forms.CharField(max_length=200, required=False, widget=UnfoldAdminTextInputWidget)


class DeclineForm(forms.Form):
    reason = forms.CharField(
        required=False,
        widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
        help_text="Why the customer declined (kept in the quote's history).",
    )


# action: (button label, the states it is offered in, form or None, approvers only)
WORKFLOW = {
    "submit": ("Submit for approval", {S.DRAFT}, None, False),
    "approve": ("Approve", {S.IN_REVIEW}, CommentForm, True),
    "reject": ("Reject", {S.IN_REVIEW}, RejectForm, True),
    "mark_sent": ("Mark as sent", {S.APPROVED}, None, False),
    "accept": ("Accept for the customer", {S.APPROVED, S.SENT}, AcceptForm, False),
    "decline": ("Decline", {S.DRAFT, S.IN_REVIEW, S.APPROVED, S.SENT}, DeclineForm, False),
    "new_version": (
        "New version",
        {S.IN_REVIEW, S.APPROVED, S.SENT, S.DECLINED, S.EXPIRED},
        None,
        False,
    ),
}


def run_workflow(request, quote: Quote, action: str, data: dict) -> Quote:
    """Call the action's service; return the quote to show next (a new version: the copy)."""
    by = request.user
    if action == "submit":
        quote = services.quote_submit(quote=quote, by=by)
        if quote.status == S.IN_REVIEW:
            messages.warning(
                request,
                f"Quote {quote.number} is in review: finance approves it before it is sent. "
                + " ".join(quote.approval_reasons),
            )
        else:
            messages.success(
                request, f"Quote {quote.number} is approved: no approval rule applies."
            )
    elif action == "approve":
        quote = services.quote_approve(quote=quote, by=by, comment=data.get("comment", ""))
        messages.success(request, f"Quote {quote.number} is approved.")
    elif action == "reject":
        quote = services.quote_reject(quote=quote, by=by, comment=data.get("comment", ""))
        messages.success(request, f"Quote {quote.number} went back to its rep as a draft.")
    elif action == "mark_sent":
        to = quote.customer.billing_email
        quote = services.quote_mark_sent(quote=quote, by=by, to=to)
        messages.success(request, f"Quote {quote.number} is marked as sent.")
    elif action == "accept":
        quote = services.quote_accept(
            quote=quote, by=by, name=data.get("name", ""), title=data.get("title", "")
        )
        if quote.kind == Quote.Kind.AMENDMENT:
            done = f"subscription {quote.contract.external_id} amended from {quote.effective_date}"
        else:
            done = f"subscription {quote.subscription.external_id} created"
        messages.success(request, f"Quote {quote.number} accepted: {done}.")
    elif action == "decline":
        quote = services.quote_decline(quote=quote, by=by, reason=data.get("reason", ""))
        messages.success(request, f"Quote {quote.number} is declined.")
    elif action == "new_version":
        old = quote
        quote = services.quote_new_version(quote=quote, by=by)
        messages.success(request, f"Quote {quote.number} is a new draft copying {old.number}.")
    return quote


# --- list actions --------------------------------------------------------------------------


def _run(modeladmin, request, queryset, action):
    for quote in queryset:
        try:
            run_workflow(request, quote, action, {})
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)


@admin.action(description="Submit selected quotes for approval", permissions=["change"])
def submit_for_approval(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, "submit")


@admin.action(description="Approve selected quotes", permissions=["approve"])
def approve(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, "approve")


@admin.action(description="Mark selected quotes as sent", permissions=["change"])
def mark_sent(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, "mark_sent")


@admin.action(
    description="Accept selected quotes (creates the subscription)", permissions=["change"]
)
def accept(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, "accept")


@admin.action(description="Decline selected quotes", permissions=["change"])
def decline(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, "decline")


@admin.action(description="Mark selected quotes as expired", permissions=["change"])
def expire(modeladmin, request, queryset):
    for quote in queryset:
        try:
            services.quote_expire(quote=quote, by=request.user)
        except DomainError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
        else:
            modeladmin.message_user(request, f"Quote {quote.number} marked as expired.")


def approval_queue_badge(request) -> str:
    """The sidebar's count of quotes waiting for approval (finance's queue)."""
    count = Quote.objects.filter(status=S.IN_REVIEW).count()
    return str(count) if count else ""


APPROVAL_QUEUE = "status__exact=in_review"


# --- the quote page and list ---------------------------------------------------------------


@admin.register(Quote)
class QuoteAdmin(
    QuoteAmendmentsMixin, QuoteRenewalsMixin, QuoteDocumentsMixin, SimpleHistoryAdmin, ModelAdmin
):
    # Fits its card at 1366 px; the start date is on the quote page.
    list_display = ["number", "customer", "plan", "status_shown", "owner", "valid_until", "total"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("plan", RelatedDropdownFilter),
    ]
    list_select_related = ["customer", "plan", "owner"]
    search_fields = ["customer__name", "customer__external_id", "title"]
    autocomplete_fields = ["customer"]
    inlines = [QuoteLineInline]
    actions = [submit_for_approval, approve, mark_sent, accept, decline, expire]
    change_form_template = "admin/quotes/quote/change_form.html"
    warn_unsaved_form = False
    readonly_fields = [
        "status_shown",
        "reasons",
        "history_table",
        "subscription_link",
        "accepted",
        "sent",
        "versions",
        "amendment_banner",  # an amendment's (quotes.admin_amendments)
    ]
    fieldsets = [
        (None, {"fields": ["customer", "plan", "title", "owner", "status_shown", "reasons"]}),
        (
            "Terms",
            {
                "fields": [
                    "start_date",
                    "term_months",
                    "billing_interval_months",
                    "payment_terms_days",
                    "valid_until",
                    "subscription_external_id",
                    "notes",
                ]
            },
        ),
        ("Result", {"fields": ["subscription_link", "accepted", "sent", "versions"]}),
        ("Status history", {"fields": ["history_table"]}),
    ]

    # -- list --

    def get_list_display(self, request):
        if request.GET.get("status__exact") == S.IN_REVIEW:
            # The approval queue: what the approver decides on
            return ["number", "customer", "owner", "total", "reasons"]
        return self.list_display

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("customer", "plan")
        match = request.resolver_match
        if match is None or not match.url_name or not match.url_name.endswith("changelist"):
            return queryset  # the quote's page reads its lines once, for its totals
        # The list's totals in a few queries for the page; to an attribute of its own, so that
        # `quote.lines` stays a fresh read for the services.
        lines = QuoteLine.objects.select_related("charge").prefetch_related(
            "charge__tiers", "tiers", "phases"
        )
        listed = Prefetch("lines", queryset=lines, to_attr="listed_lines")
        return queryset.prefetch_related(listed)

    @admin.display(description="Status", ordering="status")
    def status_shown(self, obj):
        return status_label(obj) if obj.pk else status_label(Quote(status=S.DRAFT))

    @admin.display(description="Total contract value")
    def total(self, obj):
        if not obj.pk:
            return "—"
        lines = getattr(obj, "listed_lines", None)
        if lines is None:
            return format_money(quote_totals(obj).tcv, obj.currency)
        extras = {
            line.pk: LineExtras(tiers_as_pricing(line.tiers.all()), phases_of(line.phases.all()))
            for line in lines
        }
        return format_money(quote_totals(obj, lines, extras).tcv, obj.currency)

    @admin.display(description="Approval reasons")
    def reasons(self, obj):
        if not obj.approval_reasons:
            return "—"
        return format_html(
            '<ul class="list-disc pl-4">{}</ul>',
            format_html_join("", "<li>{}</li>", ((r,) for r in obj.approval_reasons)),
        )

    # -- the page's read-only parts --

    @admin.display(description="From → to, who, when, why")
    def history_table(self, obj):
        # The admin reads a read-only field more than once: its HTML once per page
        if not hasattr(obj, "_history_html"):
            obj._history_html = self._history_html(obj)
        return obj._history_html

    def _history_html(self, obj):
        if not obj.pk:
            return "—"
        changes = list(obj.status_changes.select_related("by"))
        if not changes:
            return "No move yet: the quote is a draft."
        rows = format_html_join(
            "",
            '<tr class="border-b border-base-200 dark:border-base-800">'
            '<td class="pr-4 py-1 whitespace-nowrap">{} → {}</td>'
            '<td class="pr-4 py-1">{}</td><td class="pr-4 py-1 whitespace-nowrap">{}</td>'
            '<td class="py-1">{}</td></tr>',
            (
                (
                    Quote.Status(c.from_status).label,
                    Quote.Status(c.to_status).label,
                    c.by.get_username() if c.by else "system",
                    f"{c.at:%Y-%m-%d %H:%M}",
                    c.reason,
                )
                for c in changes
            ),
        )
        return format_html('<table id="status-history" class="text-sm">{}</table>', rows)

    @admin.display(description="Subscription")
    def subscription_link(self, obj):
        if not obj.subscription_id:
            return "—"
        return format_html(
            '<a href="{}" class="{}">{}</a>',
            reverse("admin:subscriptions_subscription_change", args=[obj.subscription_id]),
            LINK_CLASSES,
            obj.subscription.external_id,
        )

    @admin.display(description="Accepted")
    def accepted(self, obj):
        if not obj.accepted_at:
            return "—"
        who = ", ".join(p for p in (obj.accepted_by_name, obj.accepted_by_title) if p)
        return f"{obj.accepted_at:%Y-%m-%d %H:%M}" + (f" by {who}" if who else "")

    @admin.display(description="Sent")
    def sent(self, obj):
        if not obj.sent_at:
            return "—"
        return f"{obj.sent_at:%Y-%m-%d %H:%M}" + (f" to {obj.sent_to}" if obj.sent_to else "")

    @admin.display(description="Versions")
    def versions(self, obj):
        if not obj.pk:
            return "—"
        if not hasattr(obj, "_newer"):
            obj._newer = list(obj.revisions.all())
        links = []
        if obj.revision_of_id:
            links.append(("new version of", obj.revision_of_id, f"Q-{obj.revision_of_id:05d}"))
        for newer in obj._newer:
            links.append(("replaced by", newer.pk, newer.number))
        if not links:
            return f"version {obj.version}"
        return format_html_join(
            " · ",
            '{} <a href="{}" class="' + LINK_CLASSES + '">{}</a>',
            (
                (what, reverse("admin:quotes_quote_change", args=[pk]), label)
                for what, pk, label in links
            ),
        )

    # -- editing --

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        if not obj.editable:
            return [f.name for f in Quote._meta.fields] + self.readonly_fields
        if obj.status != S.DRAFT:
            # An approved quote's lines and terms change; its customer and plan (its lines'
            # charges and currency) do not: a new version starts from them.
            return ["customer", "plan", *self.readonly_fields]
        return self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            # A new quote: no status, history or result yet
            return [(name, opts) for name, opts in fieldsets if name in (None, "Terms")]
        return fieldsets

    def has_delete_permission(self, request, obj=None):
        # Drafts only: a sent quote is declined or expires, an accepted one made a subscription.
        if obj is not None and obj.status != S.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def has_approve_permission(self, request, obj=None):
        return request.user.has_perm("quotes.approve_quote")

    def get_form(self, request, obj=None, change=False, **kwargs):
        request._quote = obj  # the line inline offers only this quote's plan's charges
        form = super().get_form(request, obj, change, **kwargs)
        if "owner" in form.base_fields:
            form.base_fields["owner"].initial = request.user.pk
        return form

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        wanted = not getattr(request, "_totals_endpoint", False)
        if wanted and isinstance(inline, QuoteLineInline) and obj is not None and obj.pk:
            # The rows' list and net prices and their tiers and phases, computed once
            totals = getattr(request, "_quote_totals", None)
            if totals is None:
                totals = request._quote_totals = self._totals(obj)
            inline.figures = {f.line.pk: f for f in totals[0].lines}
            inline.extras = totals[1]
            inline.currency = obj.currency
        return kwargs

    def _totals(self, quote):
        lines = list(quote.lines.select_related("charge").prefetch_related("charge__tiers"))
        extras = read_extras(lines)
        return quote_totals(quote, lines, extras), extras

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan":
            kwargs["queryset"] = db_field.related_model.objects.filter(active=True)
        if db_field.name == "owner":
            from django.contrib.auth import get_user_model

            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not obj.owner_id:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        quote = form.instance
        if change and "plan" in form.changed_data:
            # Another plan: its charges replace the old plan's lines, which cannot apply.
            if quote.kind == Quote.Kind.AMENDMENT:
                amendment_populate_lines(quote=quote)  # or, back on its plan, the contract
            else:
                services.quote_populate_lines(quote=quote, replace=True)
            for formset in formsets:  # not saved: the change message reads what they saved
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            return
        super().save_related(request, form, formsets, change)
        try:
            services.quote_populate_lines(quote=quote)
        except DomainError as exc:
            messages.error(request, exc.message)
        edited = form.has_changed() or any(f.has_changed() for f in formsets)
        if change and quote.status == S.APPROVED and edited:
            quote_was_edited(request, quote)

    # -- the page: totals panel and workflow buttons --

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            totals = getattr(request, "_quote_totals", None) or self._totals(obj)
            context["totals_panel"] = panel_context(obj, totals[0])
            context["workflow_buttons"] = self._buttons(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _buttons(self, request, quote):
        """(action, label, how) of the buttons offered: "submit" saves the form first (an
        editable quote), "link" opens the action's page."""
        buttons = []
        for action, (label, states, _form, approvers) in WORKFLOW.items():
            if quote.status not in states:
                continue
            if approvers and not self.has_approve_permission(request):
                continue
            if not approvers and not self.has_change_permission(request, quote):
                continue
            editing = quote.editable and self.has_change_permission(request, quote)
            how = "submit" if editing else "link"
            url = reverse("admin:quotes_quote_workflow", args=[quote.pk, action])
            buttons.append({"action": action, "label": label, "how": how, "url": url})
        return buttons + self.document_buttons(request, quote)

    def response_change(self, request, obj):
        action = request.POST.get("_workflow")
        if action in WORKFLOW:
            if WORKFLOW[action][2] is not None:
                # Saved; now the action's page asks for its comment, name or reason
                return HttpResponseRedirect(
                    reverse("admin:quotes_quote_workflow", args=[obj.pk, action])
                )
            try:
                obj = run_workflow(request, obj, action, {})
            except DomainError as exc:
                messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[obj.pk]))
        return super().response_change(request, obj)

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/totals/",
                self.admin_site.admin_view(self.totals_view),
                name="quotes_quote_totals",
            ),
            path(
                "<path:object_id>/workflow/<str:action>/",
                self.admin_site.admin_view(self.workflow_view),
                name="quotes_quote_workflow",
            ),
        ]
        return urls + super().get_urls()

    def totals_view(self, request, object_id):
        """The totals panel for the change form's data as posted, saving nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        quote = self.get_object(request, object_id)
        if quote is None:
            raise Http404
        if not self.has_view_or_change_permission(request, quote):
            raise PermissionDenied
        problems = []
        request._totals_endpoint = True  # the inline's per-row figures are not needed here
        if quote.editable and self.has_change_permission(request, quote):
            form_class = self.get_form(request, quote, change=True)
            form = form_class(request.POST, request.FILES, instance=quote)
            if not form.is_valid():
                problems += [
                    f"{form.fields[f].label if f in form.fields else 'Quote'}: {e}"
                    for f, errors in form.errors.items()
                    for e in errors
                ]
                quote = self.get_object(request, object_id)  # the saved terms
            formsets, _ = self._create_formsets(request, quote, change=True)
            lines_formset = next(f for f in formsets if f.model is QuoteLine)
            lines, line_problems = posted_lines(quote, lines_formset)
            problems += line_problems
        else:
            lines = None
        totals = quote_totals(quote, lines)
        html = render_to_string(
            "admin/quotes/quote/totals.html", panel_context(quote, totals, problems), request
        )
        return HttpResponse(html)

    def workflow_view(self, request, object_id, action):
        """An action's page: its comment, name or reason, then the service."""
        if action not in WORKFLOW:
            raise Http404
        quote = get_object_or_404(Quote.objects.select_related("customer", "plan"), pk=object_id)
        label, states, form_class, approvers = WORKFLOW[action]
        allowed = (
            self.has_approve_permission(request)
            if approvers
            else self.has_change_permission(request, quote)
        )
        if not allowed:
            raise PermissionDenied
        form_class = form_class or forms.Form
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                shown = run_workflow(request, quote, action, form.cleaned_data)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                return HttpResponseRedirect(reverse("admin:quotes_quote_change", args=[shown.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{label}: quote {quote.number}",
            "quote": quote,
            "status": status_label(quote),
            "form": form,
            "label": label,
            "action": action,
            "offered": quote.status in states,
        }
        return TemplateResponse(request, "admin/quotes/quote/workflow.html", context)


# --- approval rules ------------------------------------------------------------------------


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ["name", "kind", "threshold_shown", "currency", "active"]
    list_filter = ["active", "kind"]
    fields = ["name", "kind", "threshold", "currency", "active"]

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_shown(self, rule):
        if rule.kind in ApprovalRule.MONEY:
            return format_price(rule.threshold, rule.currency) if rule.currency else rule.threshold
        unit = " days" if rule.kind == ApprovalRule.Kind.PAYMENT_TERMS_ABOVE else " %"
        return f"{rule.threshold.normalize():f}{unit}"


__all__ = [
    "LINES_PER_PAGE",
    "ApprovalRuleAdmin",
    "ChargeField",
    "QuoteAdmin",
    "QuoteLineAdmin",
    "approval_queue_badge",
    "charge_choices",
]
