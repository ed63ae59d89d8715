from django.urls import path

from triage.cockpit.views import audit, categories, models, overview

app_name = "cockpit"

urlpatterns = [
    path("", overview.index, name="overview"),
    path("categories/<slug:slug>/", categories.detail, name="category"),
    path("categories/<slug:slug>/preview", categories.preview_rule, name="category-preview"),
    path("categories/<slug:slug>/save", categories.save_rule, name="category-save"),
    path("categories/<slug:slug>/reroute", categories.reroute, name="category-reroute"),
    path("categories/<slug:slug>/resume", categories.resume, name="category-resume"),
    path("models/", models.timeline, name="models"),
    path("models/compare", models.compare_versions, name="compare"),
    path("models/rollback", models.roll_back, name="rollback"),
    path("models/<int:pk>/", models.version_detail, name="version"),
    path("models/<int:pk>/promote", models.promote, name="promote"),
    path("audit/", audit.audit_log, name="audit"),
]
