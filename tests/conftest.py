import pytest

from triage import services
from triage.ml.encoder import get_encoder
from triage.ml.heads import load_head

from .factories import make_keyword_categories, make_token, make_user


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """The encoder, heads and description vectors are cached per process; reset per test."""
    yield
    get_encoder.cache_clear()
    load_head.cache_clear()
    services._description_vectors.clear()


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
