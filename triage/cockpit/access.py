"""Who may open the cockpit: members of the admins group (and superusers)."""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

from reviews.roles import ADMINS


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


View = TypeVar("View", bound=Callable[..., HttpResponse])


def is_admin(user: Any) -> bool:
    return bool(
        user.is_authenticated and (user.is_superuser or user.groups.filter(name=ADMINS).exists())
    )


def admin_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in non-admins get a 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("the cockpit is for the admins group")
        return view(request, *args, **kwargs)

    return login_required(wrapped)  # type: ignore[return-value]
