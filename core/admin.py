"""The admin's shared parts: read-only mixin, the operator's tools (users, groups, API keys, the
Celery schedule, login lockouts), all on django-unfold's ModelAdmin."""

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from core.formatting import format_price, format_quantity
from core.models import ApiKey


def shown(field: str, description: str, *, currency=None):
    """A read-only display of a decimal field as people read it: a quantity or percentage
    (1,500; 25), or, with `currency` (the object's currency, from the object), a price
    ($0.0018); empty shows "—". The admin would print the column's every decimal place
    (25.000000)."""

    @admin.display(description=description)
    def display(model_admin, obj):
        value = getattr(obj, field)
        if value is None:
            return "—"
        return format_price(value, currency(obj)) if currency else format_quantity(value)

    return display


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key NAME`, shown once


# A link in a read-only field, coloured as unfold colours its own (a bare <a> reads as plain text).
LINK_CLASSES = "text-primary-600 dark:text-primary-500"


class ReadOnly:
    """Admin or inline for records that are written by services only (events, allocations,
    schedules, firings): visible, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- the operator's tools -----------------------------------------------------------------------
# Operators (group Operator, not superusers) manage users, API keys and the Celery schedule. They
# must not be able to make themselves or anyone else a superuser, nor take over a superuser.


class UserAdmin(auth_admin.UserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


class GroupAdmin(auth_admin.GroupAdmin, ModelAdmin):
    pass


class TaskSelectWidget(UnfoldAdminSelectWidget, beat_admin.TaskSelectWidget):
    pass


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    """django-celery-beat's form with unfold's widgets (its docs' recipe)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["regtask"].widget = TaskSelectWidget()


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin, ModelAdmin):
    """Enable, disable, toggle and run are changes: only for who may change periodic tasks
    (django-celery-beat offers them to anyone who can see the list)."""

    form = PeriodicTaskForm

    def get_actions(self, request):
        if not self.has_change_permission(request):
            return {}
        return super().get_actions(request)


class PeriodicTaskInline(beat_admin.PeriodicTaskInline, TabularInline):
    pass


class ScheduleAdmin(ModelAdmin):
    inlines = [PeriodicTaskInline]


class ClockedScheduleAdmin(beat_admin.ClockedScheduleAdmin, ScheduleAdmin):
    inlines = [PeriodicTaskInline]


class CrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin, ScheduleAdmin):
    inlines = [PeriodicTaskInline]


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin, ModelAdmin):
    """Without axes' "clean up expired attempts" action (it fails outside a login request, and
    expired attempts are cleaned up at each login anyway): delete an attempt to lift a lock."""

    actions = None


class AccessLogAdmin(axes_admin.AccessLogAdmin, ModelAdmin):
    pass


class AccessFailureLogAdmin(axes_admin.AccessFailureLogAdmin, ModelAdmin):
    pass


for model, model_admin in [
    (get_user_model(), UserAdmin),
    (Group, GroupAdmin),
    (PeriodicTask, PeriodicTaskAdmin),
    (IntervalSchedule, ScheduleAdmin),
    (CrontabSchedule, CrontabScheduleAdmin),
    (SolarSchedule, ScheduleAdmin),
    (ClockedSchedule, ClockedScheduleAdmin),
    (AccessAttempt, AccessAttemptAdmin),
    (AccessLog, AccessLogAdmin),
    (AccessFailureLog, AccessFailureLogAdmin),
]:
    if admin.site.is_registered(model):  # axes' only while AXES_ENABLE_ADMIN (the default)
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
