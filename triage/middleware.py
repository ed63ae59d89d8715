"""Request middleware: refuse what no view should see, with an error that names why.

Unstorable characters anywhere in a request, and API bodies over the size limit.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

from .text import unstorable_string

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def unstorable_input(request: HttpRequest) -> str | None:
    """What in this request cannot be stored (or even queried for), or None.

    A NUL in a path, a query parameter (an admin filter, a search), a form field,
    a cookie or a header otherwise reaches PostgreSQL, which refuses it with an error that
    surfaces as a 500. JSON bodies are checked field by field by the API itself.
    """
    if problem := unstorable_string(request.path_info):
        return f"the URL path {problem}"
    for key, values in request.GET.lists():
        for value in [key, *values]:
            if problem := unstorable_string(value):
                return f"query parameter {key!r} {problem}"
    if request.method == "POST" and request.content_type in FORM_TYPES:
        for key, values in request.POST.lists():
            for value in [key, *values]:
                if problem := unstorable_string(value):
                    return f"form field {key!r} {problem}"
        for key, files in request.FILES.lists():
            for upload in files:
                if problem := unstorable_string(upload.name or ""):
                    return f"the file name in form field {key!r} {problem}"
    for key, value in request.COOKIES.items():
        if problem := unstorable_string(key) or unstorable_string(value):
            return f"cookie {key!r} {problem}"
    # Headers too: django-axes stores the User-Agent and Accept of every failed login.
    for key, value in request.headers.items():
        if problem := unstorable_string(value):
            return f"header {key!r} {problem}"
    return None


class RejectUnstorableInput:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            problem = unstorable_input(request)
        except (MultiPartParserError, BadRequest) as exc:
            # A form body that does not parse (a bad multipart boundary, too many fields):
            # Django would answer its HTML 400 page, which an API client cannot read.
            problem = f"the form body could not be read ({exc})"
        if problem is None:
            return self.get_response(request)
        message = f"bad request: {problem}"
        if request.path_info.startswith("/api/"):
            return JsonResponse({"error": message}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


class ApiBodyLimit:
    """An API body over DATA_UPLOAD_MAX_MEMORY_SIZE gets a JSON 413 naming the limit.

    Django would refuse it too, but with its HTML 400 page, which an integration
    cannot parse. Reading the body here is what the API view would do first anyway.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/") and request.method in {"POST", "PUT", "PATCH"}:
            try:
                request.body  # noqa: B018  (reads up to one byte past the limit)
            except RequestDataTooBig:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                return JsonResponse(
                    {
                        "error": f"request body over the limit of {limit:,} bytes "
                        "(TRIAGE_MAX_BODY_BYTES); send smaller batches",
                        "limit_bytes": limit,
                    },
                    status=413,
                )
        return self.get_response(request)
