"""Refuse a NUL character in the URL before it reaches a query: PostgreSQL refuses NUL in text,
so `?external_subscription_id=a%00b` or `/portal/invoices/INV-1%00/` would fail as a 500 inside
the first lookup. No identifier can hold one, so a NUL in the path is a 404 and one in the query
string a 400; under /api/ in the API's error shape, elsewhere Django's pages."""

from django.core.exceptions import BadRequest
from django.http import Http404, JsonResponse


def json_error(code: str, message: str, status_code: int) -> JsonResponse:
    """The API's error shape outside DRF's views (this middleware, core.api.not_found). Here, not
    in core.api: importing DRF while the middleware loads would import core.api's JSONParser
    (DRF's settings) before core.api has defined it."""
    return JsonResponse(
        {"error": {"code": code, "message": message, "details": None}}, status=status_code
    )


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        api = request.path_info.startswith("/api/")
        if "\x00" in request.path_info:
            message = "No resource has a NUL character (%00) in its path."
            if api:
                return json_error("not_found", message, 404)
            raise Http404(message)
        if "\x00" in request.META.get("QUERY_STRING", "") or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            message = "The query string holds a NUL character (%00), which no parameter may hold."
            if api:
                return json_error("bad_request", message, 400)
            raise BadRequest(message)
        return self.get_response(request)
