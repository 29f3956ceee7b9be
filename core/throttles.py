"""Request limits: API requests per API key (DRF throttling on the Django cache)."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """`settings.API_RATE_LIMIT` requests per API key ("6000/min"; empty: no limit).

    Over it, DRF raises Throttled: 429 with `Retry-After`, in the API's error shape. Counts live
    in the default cache: shared by all web processes with Redis, per process with LocMemCache.
    Requests without a key are not counted here (they are refused with 401 first).
    """

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at each request, not from DRF's import-time settings, so that tests can override.
        return settings.API_RATE_LIMIT or None

    def get_cache_key(self, request, view) -> str | None:
        key = getattr(request.user, "api_key", None)
        if key is None:
            return None
        # The prefix (random, per key) keeps keys apart across databases sharing one cache.
        return self.cache_format % {"scope": self.scope, "ident": f"{key.pk}-{key.prefix}"}


def client_ip(request) -> str | None:
    """The client's address behind one TLS proxy: the last X-Forwarded-For entry (the one the
    proxy appended; earlier ones are whatever the client sent)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR")


def login_lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (admin or portal): 429, Retry-After, a page in
    the product's look that says why and for how long."""
    from axes.helpers import get_client_username, get_cool_off, get_failure_limit
    from django.shortcuts import render

    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    response = render(
        request,
        "lockout.html",
        {
            "failure_limit": get_failure_limit(request, credentials),
            "username": get_client_username(request, credentials) or "",
            "cooloff_minutes": max(1, round(seconds / 60)),
        },
        status=429,
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
