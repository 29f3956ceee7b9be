"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, parsers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError
from core.middleware import json_error


def error_response(code: str, message: str, status_code: int, details=None) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "details": details}}, status=status_code
    )


class JSONParser(parsers.JSONParser):
    """DRF's parser, but a document nested deeper than Python's recursion limit is a parse error
    (400), not a RecursionError (500). Bytes that are not UTF-8 and numbers with too many digits
    are ValueErrors, which DRF already answers with 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the document is nested too deeply."
            ) from None


@csrf_exempt  # a POST to an unknown path is a 404 too, not the CSRF page (no cookies here)
def not_found(request, *args, **kwargs) -> JsonResponse:
    """Any path under /api/ that names no endpoint: a JSON 404 in the error shape (an HTML page
    reads as a server failure to API clients)."""
    return json_error(
        "not_found",
        f"No API endpoint at {request.method} '{request.path}'. The paths have no trailing "
        "slash; the schema is at /api/schema/.",
        404,
    )


def handler404(request, exception=None):
    if request.path_info.startswith("/api/"):
        return not_found(request)
    return defaults.page_not_found(request, exception)


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
