import pytest

from triage import training
from triage.access import ADMINS
from triage.models import RoutingPolicy

from ..factories import make_labelled_history, make_user


@pytest.fixture
def admin_user(db):
    return make_user("root", group=ADMINS)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def champion(categories):
    make_labelled_history(categories)
    # Small evidence in tests: let a threshold rest on a handful of held-out items.
    RoutingPolicy.objects.update_or_create(
        pk=1,
        defaults={"target_precision": 0.7, "min_support": 5, "audit_rate": 0, "audit_floor": 0},
    )
    return training.retrain().version
