from functools import partial
from typing import Any

from django.http import HttpRequest

from triage.access import is_admin


def cockpit(request: HttpRequest) -> dict[str, Any]:
    # A callable, so the group lookup runs only on pages that show the link.
    return {"is_cockpit_admin": partial(is_admin, request.user)}
