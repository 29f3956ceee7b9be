"""What the OpenAPI schema says about the whole API: the Bearer scheme, the error shape, and the
error statuses an endpoint declares (each with the error body)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """core.auth.ApiKeyAuthentication as an HTTP Bearer scheme (Swagger UI's Authorize button)."""

    target_class = "core.auth.ApiKeyAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key made with `manage.py create_api_key`.",
        }


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: validation_error, not_found, …")
    message = serializers.CharField(help_text="For people: what is wrong and what to do.")
    details = serializers.JSONField(
        allow_null=True,
        help_text=(
            "null, or more: for an invalid batch, [{index, errors: [reason, …]}] per bad event."
        ),
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_STATUSES = {
    400: "The body is not valid JSON (parse_error), or the query string holds a NUL.",
    401: "No key (not_authenticated), or an unknown or revoked key (authentication_failed).",
    404: "No such customer, subscription or period in progress (not_found).",
    409: "Refused by the subscription's state (conflict): it is not live (cancelled, ended), or "
    "another change came first (the revision moved).",
    413: "The body is over the size limit (request_too_large): send fewer events per request.",
    415: "The body is not application/json (unsupported_media_type).",
    422: "The request is understood but refused (validation_error); nothing was stored.",
    429: "Too many requests (throttled): retry after Retry-After seconds.",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before retrying.",
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[status])
        for status in statuses
    }
