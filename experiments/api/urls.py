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

# Schedules, workflows and workflow runs (experiments.api.schedules).
from . import schedules  # noqa: E402 - appended with its patterns

urlpatterns += [
    path(
        f"{tenant}/schedules/",
        schedules.ScheduleViewSet.as_view({"get": "list", "post": "create"}),
        name="schedule-list",
    ),
    path(
        f"{tenant}/schedules/<str:id>/",
        schedules.ScheduleViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "put": "update", "delete": "destroy"}
        ),
        name="schedule-detail",
    ),
    *[
        path(f"{tenant}/schedules/<str:id>/{verb}/", schedules.ScheduleViewSet.as_view({"post": verb}),
             name=f"schedule-{verb}")
        for verb in ("pause", "resume")
    ],
    path(
        f"{tenant}/workflows/",
        schedules.WorkflowViewSet.as_view({"get": "list", "post": "create"}),
        name="workflow-list",
    ),
    path(
        f"{tenant}/workflows/<str:id>/",
        schedules.WorkflowViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "put": "update", "delete": "destroy"}
        ),
        name="workflow-detail",
    ),
    path(
        f"{tenant}/workflows/<str:id>/manifest/",
        schedules.WorkflowViewSet.as_view({"get": "manifest"}),
        name="workflow-manifest",
    ),
    path(
        f"{tenant}/workflows/<str:id>/runs/",
        schedules.WorkflowViewSet.as_view({"post": "start_run"}),
        name="workflow-runs",
    ),
    path(f"{tenant}/workflow-runs/", schedules.WorkflowRunViewSet.as_view({"get": "list"}), name="workflowrun-list"),
    path(
        f"{tenant}/workflow-runs/<str:id>/",
        schedules.WorkflowRunViewSet.as_view({"get": "retrieve"}),
        name="workflowrun-detail",
    ),
    path(
        f"{tenant}/workflow-runs/<str:id>/abort/",
        schedules.WorkflowRunViewSet.as_view({"post": "abort"}),
        name="workflowrun-abort",
    ),
]
