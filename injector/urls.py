"""Portal pages of the injector app."""
from django.urls import path

from . import views

app_name = "injector"

tenant = "t/<slug:tenant_slug>"
urlpatterns = [
    path(f"{tenant}/environments/", views.EnvironmentsView.as_view(), name="environments"),
    path(f"{tenant}/environments/<slug:name>/manifest/", views.ClusterManifestView.as_view(), name="cluster-manifest"),
]
