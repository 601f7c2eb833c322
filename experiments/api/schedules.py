"""Schedules, workflows and workflow runs over the API. Thin, as experiments.api.views: scoping and
permissions come from the tenant-scoped base viewset, the work and the audit from experiments.services
and experiments.workflows."""
from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from injector import manifests
from injector.manifests import DESCRIPTION_ANNOTATION
from tenants.api.scoping import TenantScopedViewSet

from .. import services, workflows
from ..filters import ScheduleFilterSet, WorkflowRunFilterSet
from ..models import Schedule, Workflow, WorkflowRun
from .schedule_serializers import (
    ScheduleDetailSerializer,
    ScheduleSerializer,
    ScheduleWriteSerializer,
    WorkflowRunDetailSerializer,
    WorkflowRunSerializer,
    WorkflowRunStartSerializer,
    WorkflowSerializer,
    WorkflowWriteSerializer,
)
from .views import YAML_TYPE

#: What a PUT resets when the body leaves it out (a PUT gives the whole object).
SCHEDULE_DEFAULTS = {
    "description": "", "labels": {}, "time_zone": "UTC", "experiment": None, "workflow": None, "dry_run": None,
    "concurrency_policy": Schedule.ConcurrencyPolicy.FORBID, "history_limit": None, "starting_deadline_seconds": None,
    "paused": False,
}
WORKFLOW_DEFAULTS = {"description": "", "labels": {}, "namespace": ""}


def _same_name(obj: Schedule | Workflow, data: dict[str, Any]) -> dict[str, Any]:
    """The request without its name, which must be the object's: a name is its identity (as in Chaos Mesh)."""
    name = data.pop("name", obj.name)
    if name != obj.name:
        kind = obj._meta.verbose_name
        raise ValidationError({"name": f"a {kind}'s name cannot be changed ({obj.name!r}); create a new {kind} "
                                       "and delete this one instead"})
    return data


class ScheduleViewSet(TenantScopedViewSet):
    """Cron schedules of experiments and workflows: everyone in the tenant reads them; operators and
    owners write, pause and resume them. The schedules a workflow's Schedule node makes are not listed
    (they live and die with their node) and cannot be changed here."""

    model = Schedule
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilterSet
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"pause": "change", "resume": "change"}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset().select_related("experiment", "workflow", "environment", "created_by")
        if self.action == "list":
            queryset = queryset.filter(workflow_node__isnull=True)
        return queryset

    def get_object(self) -> Schedule:
        schedule = super().get_object()
        if self.permission_action != "view" and schedule.workflow_node_id is not None:
            raise ValidationError({"schedule": "belongs to a node of a workflow run and ends with it; abort the "
                                               "workflow run to stop it"})
        return schedule

    def _detail(self, schedule: Schedule, code: int = status.HTTP_200_OK) -> Response:
        return Response(ScheduleDetailSerializer(schedule).data, status=code)

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=ScheduleDetailSerializer)
    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return self._detail(self.get_object())

    @extend_schema(request=ScheduleWriteSerializer, responses={201: ScheduleDetailSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        body = ScheduleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = services.save_schedule(self.actor, self.tenant, dict(body.validated_data))
        return self._detail(schedule, status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleWriteSerializer, responses=ScheduleDetailSerializer)
    def partial_update(self, request: Any, tenant_slug: str, id: str) -> Response:
        schedule = self.get_object()
        body = ScheduleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = _same_name(schedule, dict(body.validated_data))
        return self._detail(services.save_schedule(self.actor, self.tenant, data, schedule))

    @extend_schema(request=ScheduleWriteSerializer, responses=ScheduleDetailSerializer)
    def update(self, request: Any, tenant_slug: str, id: str) -> Response:
        schedule = self.get_object()
        body = ScheduleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = SCHEDULE_DEFAULTS | _same_name(schedule, dict(body.validated_data))
        return self._detail(services.save_schedule(self.actor, self.tenant, data, schedule))

    def destroy(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Delete the schedule; the runs it started go on until their deadline and stay archived."""
        services.delete_schedule(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ScheduleDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, tenant_slug: str, id: str) -> Response:
        """No tick fires while paused; runs already started go on. Pausing a paused schedule does nothing."""
        return self._detail(services.set_paused(self.actor, self.get_object(), True))

    @extend_schema(request=None, responses=ScheduleDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, tenant_slug: str, id: str) -> Response:
        """The next tick counts from now: ticks missed while paused are not fired."""
        return self._detail(services.set_paused(self.actor, self.get_object(), False))


class WorkflowViewSet(TenantScopedViewSet):
    """Workflows (Chaos Mesh's Workflow: a tree of Serial, Parallel, Suspend, chaos, StatusCheck and
    Schedule templates): everyone in the tenant reads them; operators and owners write and run them."""

    model = Workflow
    serializer_class = WorkflowSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"manifest": "view", "start_run": "run"}

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().select_related("created_by")

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=WorkflowWriteSerializer, responses={201: WorkflowSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        body = WorkflowWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workflow = services.save_workflow(self.actor, self.tenant, dict(body.validated_data))
        return Response(self.get_serializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WorkflowWriteSerializer, responses=WorkflowSerializer)
    def partial_update(self, request: Any, tenant_slug: str, id: str) -> Response:
        workflow = self.get_object()
        body = WorkflowWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        workflow = services.save_workflow(self.actor, self.tenant, _same_name(workflow, dict(body.validated_data)),
                                          workflow)
        return Response(self.get_serializer(workflow).data)

    @extend_schema(request=WorkflowWriteSerializer, responses=WorkflowSerializer)
    def update(self, request: Any, tenant_slug: str, id: str) -> Response:
        workflow = self.get_object()
        body = WorkflowWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = WORKFLOW_DEFAULTS | _same_name(workflow, dict(body.validated_data))
        workflow = services.save_workflow(self.actor, self.tenant, data, workflow)
        return Response(self.get_serializer(workflow).data)

    def destroy(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Delete the workflow; its running workflow runs are aborted (their faults recovered) and stay archived."""
        services.delete_workflow(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, YAML_TYPE): OpenApiResponse(description="The Chaos Mesh Workflow manifest.")})
    @action(detail=True, methods=["get"])
    def manifest(self, request: Any, tenant_slug: str, id: str) -> HttpResponse:
        workflow = self.get_object()
        definition = workflows.definition_of(workflow.name, workflow.namespace, workflow.spec)
        annotations = {DESCRIPTION_ANNOTATION: workflow.description} if workflow.description else {}
        meta = dataclasses.replace(definition.meta, labels=dict(workflow.labels), annotations=annotations)
        text = manifests.dump([dataclasses.replace(definition, meta=meta)])
        response = HttpResponse(text, content_type=f"{YAML_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{workflow.name}.yaml"'
        return response

    @extend_schema(request=WorkflowRunStartSerializer,
                   responses={201: WorkflowRunDetailSerializer, 409: WorkflowRunDetailSerializer})
    @action(detail=True, methods=["post"])
    def start_run(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Start a run of this workflow against an environment. A start the policy refuses is recorded
        (phase failed, its message naming each rule) and answered with 409."""
        workflow = self.get_object()
        body = WorkflowRunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wr = workflows.start_workflow(
            self.actor, workflow, body.validated_data["environment"], dry_run=body.validated_data["dry_run"]
        )
        # Only a policy refusal ends a workflow run in the call that starts it.
        code = status.HTTP_409_CONFLICT if wr.phase == WorkflowRun.Phase.FAILED else status.HTTP_201_CREATED
        return Response(WorkflowRunDetailSerializer(wr).data, status=code)


class WorkflowRunViewSet(TenantScopedViewSet):
    """Workflow runs of a tenant, newest first: each with its nodes, events and status-check probes."""

    model = WorkflowRun
    serializer_class = WorkflowRunSerializer
    filterset_class = WorkflowRunFilterSet
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"abort": "change"}

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().select_related("workflow", "schedule", "created_by")

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=WorkflowRunDetailSerializer)
    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(WorkflowRunDetailSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=WorkflowRunDetailSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Stop every node and recover every fault of the workflow run now."""
        wr = self.get_object()
        if not workflows.abort(self.actor, wr):
            wr.refresh_from_db(fields=["phase"])
            raise ValidationError({"phase": f"the workflow run has already ended ({wr.phase}): there is nothing "
                                            "to abort"})
        wr.refresh_from_db()
        return Response(WorkflowRunDetailSerializer(wr).data)
