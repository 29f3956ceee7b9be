"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError


def error_response(code: str, message: str, status_code: int, details=None) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "details": details}}, status=status_code
    )


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.message, exc.status, exc.details)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(
            "request_too_large",
            f"The request body is over {limit:,} bytes: send fewer events per batch.",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated):
        message = "Authentication required: send 'Authorization: Bearer <api key>'."
    elif isinstance(exc, exceptions.ParseError):
        message = f"The request body is not valid JSON: {exc.detail}"
    elif isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        message = str(exc.detail)
    else:
        message = "The request is invalid."
    code = getattr(exc, "default_code", "error")
    details = response.data if not isinstance(getattr(exc, "detail", None), str) else None
    response.data = {"error": {"code": code, "message": message, "details": details}}
    return response  # keeps DRF's headers (WWW-Authenticate, Retry-After)
