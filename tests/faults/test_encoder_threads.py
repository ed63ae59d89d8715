"""A prefork worker shares the machine's cores among its processes' encoders
(triage.ml.threads): each pool process builds its encoder with cores ÷ processes threads,
not the runtime's default of every core; a solo worker keeps the default."""

from triage.api import ingest
from triage.api.intake import ItemIn
from triage.ml.threads import available_cpus
from triage.models import Item

from .conftest import wait_until

THREADS = "tests.faults.slow_encoder.ThreadsEncoder"


def _classify_through(running, broker_url, tmp_path, **worker):
    folder = tmp_path / "threads"
    folder.mkdir()
    running.worker(
        broker_url, TRIAGE_ENCODER_CLASS=THREADS, TRIAGE_TEST_THREADS_DIR=str(folder), **worker
    )
    ingest.ingest_items(items=[ItemIn(external_id=f"t-{i}", text=f"refund {i}") for i in range(5)])
    wait_until(
        lambda: not Item.objects.filter(status=Item.Status.RECEIVED).exists(),
        60,
        "the items to be classified",
    )
    return {path.read_text() for path in folder.iterdir()}


def test_a_prefork_pool_shares_the_cores_among_its_processes(
    categories, publish_to, running, tmp_path
):
    built = _classify_through(running, publish_to.url, tmp_path, pool="prefork", concurrency=2)
    assert built == {str(max(1, available_cpus() // 2))}


def test_a_solo_worker_keeps_the_runtime_default(categories, publish_to, running, tmp_path):
    assert _classify_through(running, publish_to.url, tmp_path) == {"None"}


def test_the_setting_overrides_the_share(categories, publish_to, running, tmp_path):
    built = _classify_through(
        running,
        publish_to.url,
        tmp_path,
        pool="prefork",
        concurrency=2,
        TRIAGE_ENCODER_THREADS="3",
    )
    assert built == {"3"}
