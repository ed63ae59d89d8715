import pytest

from tests.factories import make_keyword_categories
from triage.actions.models import Endpoint

from .receiver import Receiver


@pytest.fixture
def webhook_settings(settings):
    settings.TRIAGE_WEBHOOK_ALLOW_PRIVATE = True
    settings.TRIAGE_WEBHOOK_TIMEOUT_SECONDS = 1
    return settings


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def endpoint(db, webhook_settings, receiver):
    endpoint = Endpoint.objects.create(url=receiver.url)
    receiver.secret = endpoint.secret
    return endpoint


@pytest.fixture
def categories(db):
    return make_keyword_categories()
