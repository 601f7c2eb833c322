from django.urls import path

from .views import CatalogView, EnvironmentViewSet

tenant = "tenants/<slug:tenant_slug>"
env = f"{tenant}/environments/<slug:name>"
urlpatterns = [
    path("catalog/", CatalogView.as_view(), name="catalog"),
    path(
        f"{tenant}/environments/", EnvironmentViewSet.as_view({"get": "list", "post": "create"}),
        name="environment-list",
    ),
    path(
        f"{env}/", EnvironmentViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="environment-detail",
    ),
    path(f"{env}/token/", EnvironmentViewSet.as_view({"post": "token"}), name="environment-token"),
    path(
        f"{env}/manifest/", EnvironmentViewSet.as_view({"get": "manifest", "post": "manifest_with_token"}),
        name="environment-manifest",
    ),
    path(f"{env}/agents/", EnvironmentViewSet.as_view({"get": "agents"}), name="environment-agents"),
    path(
        f"{env}/grants/", EnvironmentViewSet.as_view({"post": "grant", "delete": "revoke"}), name="environment-grants"
    ),
]
