"""Settings of the Celery workers the fault tests start: the test settings, tasks queued."""

from tests.settings import *  # noqa: F403

# tests.settings runs tasks in-process; these workers take them from the private broker.
CELERY_TASK_ALWAYS_EAGER = False
