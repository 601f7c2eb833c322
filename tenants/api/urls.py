from django.urls import path

from . import views

app_name = "tenants-api"

tenant = "tenants/<slug:tenant_slug>"
urlpatterns = [
    path("tenants/", views.TenantViewSet.as_view({"get": "list", "post": "create"}), name="tenant-list"),
    path(
        "tenants/<slug:slug>/",
        views.TenantViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="tenant-detail",
    ),
    path(f"{tenant}/members/", views.MemberViewSet.as_view({"get": "list", "post": "create"}), name="member-list"),
    path(
        f"{tenant}/members/<str:username>/",
        views.MemberViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "put": "update", "delete": "destroy"}
        ),
        name="member-detail",
    ),
    path(f"{tenant}/tokens/", views.TokenViewSet.as_view({"get": "list", "post": "create"}), name="token-list"),
    path(
        f"{tenant}/tokens/<str:id>/",
        views.TokenViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="token-detail",
    ),
    path(f"{tenant}/policy/", views.PolicyView.as_view(), name="policy"),
    path(f"{tenant}/audit/", views.AuditViewSet.as_view({"get": "list"}), name="audit-list"),
    path(f"{tenant}/audit/<int:seq>/", views.AuditViewSet.as_view({"get": "retrieve"}), name="audit-detail"),
]
