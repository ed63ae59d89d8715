from django.urls import path

from . import views

app_name = "reviews"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("tasks/<int:task_id>/decide", views.decide, name="decide"),
]

from . import views_trust  # noqa: E402

urlpatterns += [
    path("tasks/<int:task_id>/similar", views_trust.similar, name="similar"),
    path("tasks/<int:task_id>/bulk", views_trust.bulk, name="bulk"),
    path("quality/", views_trust.quality, name="quality"),
    path(
        "quality/quarantines/<int:quarantine_id>",
        views_trust.quarantine_action,
        name="quarantine_action",
    ),
]
