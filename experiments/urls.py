"""Portal pages of the experiments app."""
from django.urls import path

from . import views

app_name = "experiments"

tenant = "t/<slug:tenant_slug>"
urlpatterns = [
    path(f"{tenant}/", views.TenantHomeView.as_view(), name="tenant-home"),
]
