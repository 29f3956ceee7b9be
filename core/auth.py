from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from core import clock
from core.models import ApiKey, hash_key


class ApiClient(AnonymousUser):
    """The identity of a request made with an API key."""

    def __init__(self, key: ApiKey):
        self.api_key = key

    @property
    def is_authenticated(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"api-key:{self.api_key.name}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` (what the Lago client sends)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed(
                "Send the API key as 'Authorization: Bearer <key>'."
            )
        key = ApiKey.objects.filter(key_hash=hash_key(raw.strip()), revoked_at=None).first()
        if key is None:
            raise exceptions.AuthenticationFailed("This API key is unknown or has been revoked.")
        if key.last_used_at is None or (clock.now() - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=clock.now())
        return ApiClient(key), key

    def authenticate_header(self, request):
        return self.keyword
