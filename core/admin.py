from axes import admin as axes_admin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import PeriodicTask

from core.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key NAME`, shown once


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


class UserAdmin(auth_admin.UserAdmin):
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


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    """Enable, disable, toggle and run are changes: only for who may change periodic tasks
    (django-celery-beat offers them to anyone who can see the list)."""

    def get_actions(self, request):
        if not self.has_change_permission(request):
            return {}
        return super().get_actions(request)


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), UserAdmin)
admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    """Without axes' "clean up expired attempts" action (it fails outside a login request, and
    expired attempts are cleaned up at each login anyway): delete an attempt to lift a lock."""

    actions = None


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
