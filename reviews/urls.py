from django.urls import path

from reviews import views
from reviews.views import bulk, trust

app_name = "reviews"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("claim", views.claim, name="claim"),
    path("undo", views.undo, name="undo"),
    path("tasks/<int:task_id>/decide", views.decide, name="decide"),
    path("tasks/<int:task_id>/skip", views.skip, name="skip"),
    path("tasks/<int:task_id>/escalate", views.escalate, name="escalate"),
    path("tasks/<int:task_id>/heartbeat", views.heartbeat, name="heartbeat"),
    path("decisions/", views.my_decisions, name="decisions"),
    path("decisions/<int:review_id>/", views.decision, name="decision"),
    path("decisions/<int:review_id>/change", views.change, name="change"),
    path("decisions/<int:review_id>/change-all", views.change_all, name="change_all"),
    path("tasks/<int:task_id>/similar", bulk.similar, name="similar"),
    path("tasks/<int:task_id>/bulk", bulk.bulk, name="bulk"),
    path("quality/", trust.quality, name="quality"),
    path("quality/<int:user_id>/", trust.quality_analyst, name="quality_analyst"),
    path(
        "quality/quarantines/<int:quarantine_id>",
        trust.quarantine_action,
        name="quarantine_action",
    ),
]
