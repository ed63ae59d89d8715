from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from triage.api.prometheus import prometheus_metrics
from triage.api.routes import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="reviews:queue"), name="home"),
    path("api/", api.urls),
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
    path("reviews/", include("reviews.urls")),
    path("cockpit/", include("triage.cockpit.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

# A lost database connection in a middleware is a 503 with Retry-After, not a 500.
handler500 = "triage.web.middleware.server_error"
