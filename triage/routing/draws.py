"""The server secret keying the audit draw (see routing.policy.audit_draw)."""

import hashlib
import hmac

from django.conf import settings


def audit_key() -> bytes:
    """TRIAGE_AUDIT_KEY, or when it is empty a key derived from SECRET_KEY.

    Derived (an HMAC of a fixed label), not the setting itself, so the draw never hands out
    material usable for signing sessions. Changing the key changes which future items are
    audited, never the past: each draw is made once, when the item is routed.
    """
    secret = settings.TRIAGE_AUDIT_KEY or settings.SECRET_KEY
    return hmac.new(secret.encode(), b"triage.audit-draw", hashlib.sha256).digest()
