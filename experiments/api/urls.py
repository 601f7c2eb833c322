from django.urls import path

from . import views

tenant = "tenants/<slug:tenant_slug>"
urlpatterns = [
    path(
        f"{tenant}/experiments/",
        views.ExperimentViewSet.as_view({"get": "list", "post": "create"}),
        name="experiment-list",
    ),
    path(
        f"{tenant}/experiments/<str:id>/",
        views.ExperimentViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "put": "update", "delete": "destroy"}
        ),
        name="experiment-detail",
    ),
    path(
        f"{tenant}/experiments/<str:id>/manifest/",
        views.ExperimentViewSet.as_view({"get": "manifest"}),
        name="experiment-manifest",
    ),
    path(
        f"{tenant}/experiments/<str:id>/runs/",
        views.ExperimentViewSet.as_view({"post": "start_run"}),
        name="experiment-runs",
    ),
    path(f"{tenant}/runs/", views.RunViewSet.as_view({"get": "list"}), name="run-list"),
    path(f"{tenant}/runs/<str:id>/", views.RunViewSet.as_view({"get": "retrieve"}), name="run-detail"),
    *[
        path(f"{tenant}/runs/<str:id>/{verb}/", views.RunViewSet.as_view({"post": verb}), name=f"run-{verb}")
        for verb in ("pause", "resume", "stop")
    ],
    path(f"{tenant}/archives/", views.ArchiveViewSet.as_view({"get": "list"}), name="archive-list"),
    path(f"{tenant}/archives/<str:id>/", views.ArchiveViewSet.as_view({"get": "retrieve"}), name="archive-detail"),
    path(f"{tenant}/halt/", views.HaltView.as_view(), name="tenant-halt"),
    path(f"{tenant}/manifests/", views.ManifestImportView.as_view(), name="manifest-import"),
    path(f"{tenant}/manifests/validate/", views.ManifestValidateView.as_view(), name="manifest-validate"),
]
