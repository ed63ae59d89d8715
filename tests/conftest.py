import shutil

import pytest
from django.conf import settings
from django.core.cache import cache

from reviews.similar import clear_indexes
from triage.classify import scoring
from triage.ml.encoder import clear_encoders
from triage.routing import cache as routing_cache

from .factories import make_keyword_categories, make_token, make_user
from .services import missing_postgres, missing_redis, services_required, unavailable


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`needs_postgres` and `needs_redis` markers, checked before any fixture builds a
    database for a test that cannot run on it (see tests/services.py)."""
    missing = [missing_postgres(*m.args) for m in item.iter_markers("needs_postgres")]
    if item.get_closest_marker("needs_redis") is not None:
        missing.append(missing_redis())
    for message in filter(None, missing):
        if services_required():
            unavailable(message)  # fails, with the message
        # A skip marker, not pytest.skip() here: pytest's own skipping hook, which runs
        # right after this one, then reports the test's location rather than this line's.
        item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """The encoder, heads, description vectors and derived routing policies are cached per
    process; reset per test (a rolled-back test's revisions can recur in the next)."""
    yield
    clear_encoders()
    scoring.clear_caches()
    clear_indexes()
    # The similar-items files hold the rows of this test's (rolled-back) database.
    shutil.rmtree(settings.TRIAGE_SIMILAR_INDEX_DIR, ignore_errors=True)
    routing_cache.clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """API rate-limit counts live in the cache, keyed by token id; ids recur across tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def categories(db):
    return make_keyword_categories()


@pytest.fixture
def token(db):
    return make_token()


@pytest.fixture
def analyst(db):
    return make_user("alice")


@pytest.fixture
def auth_headers(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
