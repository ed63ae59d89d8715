"""The Content-Security-Policy of every page (django-csp; settings.py says when it is enforced).

Scripts and styles only from this site. The pages have no inline scripts; htmx's own
inline indicator styles are turned off in base.html.
"""

from csp.constants import NONE, SELF

CSP_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}
