import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

app = Celery("triage")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each concern keeps its own tasks module; autodiscovery looks in installed apps only.
app.autodiscover_tasks(["triage.classify", "triage.training", "triage.privacy", "triage.actions"])
