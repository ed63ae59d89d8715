"""Request middleware: refuse what no view should see, with an error that names why.

Unstorable characters anywhere in a request, API bodies over the size limit, and a
database that went away mid-request (a 503 with Retry-After rather than a 500).
"""

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import defaults

from triage.models.text import unstorable_string

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

logger = logging.getLogger(__name__)


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


# --- The database went away ---------------------------------------------------

# Lost connections (a restart, a failover, pg_terminate_backend) and refused ones (too many
# clients) are OperationalError; a connection already closed is InterfaceError. Both pass:
# CONN_HEALTH_CHECKS replaces the connection at the next request.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def database_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with Retry-After for a request the database dropped; JSON under /api/.

    The request's transaction was rolled back unless it had already committed (the
    connection can fail while the answer is built): retrying is safe because ingest
    is idempotent on external_id and a review can be decided only once.
    """
    logger.warning(
        "database unavailable during %s %s; answered 503",
        request.method,
        request.path,
        exc_info=exc,
    )
    message = (
        f"the database is unavailable for a moment ({type(exc).__name__}); "
        f"retry in {RETRY_AFTER_SECONDS} seconds"
    )
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse(
            {"error": message, "retry_after_seconds": RETRY_AFTER_SECONDS}, status=503
        )
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableIs503:
    """A view that meets a lost database connection answers 503 + Retry-After, not 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return database_unavailable(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the same 503 when a middleware (sessions, auth) lost the database.

    Django calls it while handling the exception, so sys.exc_info() is that exception.
    """
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return database_unavailable(request, exc)
    return defaults.server_error(request)
