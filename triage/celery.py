import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

app = Celery("triage")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each concern keeps its own tasks module; autodiscovery looks in installed apps only.
app.autodiscover_tasks(
    ["triage.classify", "triage.training", "triage.privacy", "triage.actions", "reviews"]
)


# The worker this process belongs to (set in the worker's main process, before its pool
# forks, so each pool process inherits it).
_worker: object = None


@worker_init.connect  # type: ignore[untyped-decorator]
def remember_the_worker(sender: object = None, **kwargs: object) -> None:
    global _worker
    _worker = sender


@worker_process_init.connect  # type: ignore[untyped-decorator]
def share_the_cores(**kwargs: object) -> None:
    """Each process of a prefork pool encodes with its share of the cores, not all of them
    (triage.ml.threads): the pool's processes classify at once. A solo pool (which sends
    this signal too) is one process, whatever its concurrency reads."""
    from celery.concurrency.prefork import TaskPool

    from triage.ml.threads import share_cores

    pool = getattr(_worker, "pool_cls", None)
    # Resolved to a number before the pool starts (Celery's "auto" included).
    processes = getattr(_worker, "concurrency", 1)
    if isinstance(pool, type) and issubclass(pool, TaskPool) and isinstance(processes, int):
        share_cores(max(1, processes))


@worker_init.connect  # type: ignore[untyped-decorator]
def refuse_a_bad_encoder(**kwargs: object) -> None:
    """A worker whose encoder directory is missing or unsafe stops at start, in one line."""
    from django.core.exceptions import ImproperlyConfigured

    from triage.ml.encoder import check_configured_encoder
    from triage.ml.encoder_spec import EncoderConfigurationError

    try:
        check_configured_encoder()
    except EncoderConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from None
