from django.urls import path

from . import views

app_name = "reviews"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("tasks/<int:task_id>/decide", views.decide, name="decide"),
]
