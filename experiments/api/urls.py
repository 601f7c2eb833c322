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
    path(f"{tenant}/manifests/", views.ManifestImportView.as_view(), name="manifest-import"),
    path(f"{tenant}/manifests/validate/", views.ManifestValidateView.as_view(), name="manifest-validate"),
]
