"""Who may use the review pages, and what an expired session looks like from htmx."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.urls import reverse

from triage.access import HtmxHttpRequest, can_review

View = Callable[..., HttpResponse]
# On the login page's URL after a POST that an expired session refused.
UNSAVED_PARAM = "unsaved"


class AnalystRequest(HtmxHttpRequest):
    """The request of a view behind analyst_required (or login_required): its user is
    signed in, never anonymous. A type for mypy only; nothing checks it at run time."""

    user: User


def analyst_required(view: View) -> View:
    """Logged in, with permission to review.

    With an expired session, an htmx request gets `HX-Redirect` to the login page (a
    plain redirect would be followed by htmx and the login form swapped into the card),
    and the way back is always the queue's page: the request's own URL may be a
    POST-only endpoint, which a browser returning after login would GET.
    """

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            back = request.get_full_path() if request.method == "GET" else reverse("reviews:queue")
            if request.htmx:
                back = reverse("reviews:queue")
            login = redirect_to_login(back, resolve_url("login"))
            if request.method == "POST":
                # A key pressed after the session ended was not saved: the login page says
                # so, or the analyst would believe the decision went through.
                login["Location"] += f"&{UNSAVED_PARAM}=1"
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = login["Location"]
                return response
            return login
        if not can_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
