"""Experiments and Chaos Mesh manifests over the API. Thin: scoping and permissions come from the
tenant-scoped base views, validation from the catalogue, the work from experiments.services."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import parsers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from injector.manifests import ManifestErrors
from tenants.api.scoping import TenantScopedAPIView, TenantScopedViewSet

from .. import runs, services
from ..filters import ExperimentFilterSet, RunFilterSet
from ..models import Experiment, Run, Workflow
from .serializers import (
    ExperimentSerializer,
    ExperimentWriteSerializer,
    HaltSerializer,
    ManifestErrorSerializer,
    ManifestItemSerializer,
    RunDetailSerializer,
    RunSerializer,
    RunStartSerializer,
)

YAML_TYPE = "application/yaml"


class YAMLTextParser(parsers.BaseParser):
    """Hands the YAML text over as it came; injector.manifests parses it (and says where it is wrong)."""

    media_type = YAML_TYPE

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:
        raw = stream.read() if stream is not None else b""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise parsers.ParseError("the manifest is not UTF-8 text") from None


class TextYAMLParser(YAMLTextParser):
    media_type = "text/yaml"


class XYAMLParser(YAMLTextParser):
    media_type = "application/x-yaml"


YAML_PARSERS = [YAMLTextParser, TextYAMLParser, XYAMLParser]


class ExperimentViewSet(TenantScopedViewSet):
    """Experiments of a tenant: everyone in it reads them; operators and owners write them. The fault
    is checked against the catalogue (GET /api/v1/catalog/), errors name the field."""

    model = Experiment
    serializer_class = ExperimentSerializer
    filterset_class = ExperimentFilterSet
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"manifest": "view", "start_run": "run"}

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("created_by")

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=ExperimentWriteSerializer, responses={201: ExperimentSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        body = ExperimentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = services.create_experiment(self.actor, self.tenant, dict(body.validated_data))
        return Response(self.get_serializer(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ExperimentWriteSerializer, responses=ExperimentSerializer)
    def partial_update(self, request: Any, tenant_slug: str, id: str) -> Response:
        experiment = self.get_object()
        body = ExperimentWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        experiment = services.update_experiment(self.actor, experiment, dict(body.validated_data))
        return Response(self.get_serializer(experiment).data)

    @extend_schema(request=ExperimentWriteSerializer, responses=ExperimentSerializer)
    def update(self, request: Any, tenant_slug: str, id: str) -> Response:
        experiment = self.get_object()
        body = ExperimentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = {"params": {}, "selector": None, "mode": "", "value": None, "duration": "", "labels": {},
                "status_checks": []} | dict(
            body.validated_data
        )
        experiment = services.update_experiment(self.actor, experiment, data)
        return Response(self.get_serializer(experiment).data)

    def destroy(self, request: Any, tenant_slug: str, id: str) -> Response:
        services.delete_experiment(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, YAML_TYPE): OpenApiResponse(description="The Chaos Mesh manifest.")})
    @action(detail=True, methods=["get"])
    def manifest(self, request: Any, tenant_slug: str, id: str) -> HttpResponse:
        experiment = self.get_object()
        response = HttpResponse(services.experiment_manifest(experiment), content_type=f"{YAML_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{experiment.name}.yaml"'
        return response

    @extend_schema(request=RunStartSerializer, responses={201: RunDetailSerializer})
    @action(detail=True, methods=["post"])
    def start_run(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Start a run of this experiment against an environment. A run the policy refuses is
        recorded and answered with 409, its message naming each rule."""
        experiment = self.get_object()
        body = RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = runs.start_run(
            self.actor, experiment, body.validated_data["environment"], dry_run=body.validated_data["dry_run"]
        )
        code = status.HTTP_409_CONFLICT if run.phase == Run.Phase.REFUSED else status.HTTP_201_CREATED
        return Response(RunDetailSerializer(run).data, status=code)


class RunViewSet(TenantScopedViewSet):
    """Runs of a tenant, newest first, with their injections and events; pause, resume and stop."""

    model = Run
    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"pause": "change", "resume": "change", "stop": "change"}
    archived_only = False

    def get_queryset(self) -> Any:
        queryset = super().get_queryset().select_related("experiment", "created_by")
        if self.archived_only:
            queryset = queryset.filter(phase__in=Run.ENDED)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("injections")
        return queryset

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=RunDetailSerializer)
    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(RunDetailSerializer(self.get_object()).data)

    def _after(self, run: Run) -> Response:
        run.refresh_from_db()
        return Response(RunDetailSerializer(run).data)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Recover the run's faults and keep the run; resume injects them again."""
        run = self.get_object()
        runs.pause(self.actor, run)
        return self._after(run)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, tenant_slug: str, id: str) -> Response:
        run = self.get_object()
        runs.resume(self.actor, run)
        return self._after(run)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Recover every fault of the run now and end it (a run that has ended stays as it is)."""
        run = self.get_object()
        runs.stop(self.actor, run)
        return self._after(run)


class ArchiveViewSet(RunViewSet):
    """Ended runs (finished, failed, refused): read-only, with the spec they ran, their injections
    and events; kept after their experiment is deleted."""

    archived_only = True


class HaltView(TenantScopedAPIView):
    """The emergency stop: every active run of the tenant is stopped and its faults recovered now."""

    model = Run
    method_actions = {"POST": "change"}

    @extend_schema(request=None, responses=HaltSerializer)
    def post(self, request: Any, tenant_slug: str) -> Response:
        return Response(runs.halt(self.actor, self.tenant))


def _flag(value: str | None, name: str) -> bool | None:
    if value in (None, ""):
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValidationError({name: f"{value!r} is not true or false"})


def _errors(error: ManifestErrors) -> list[dict[str, Any]]:
    return [e.as_dict() for e in error.errors]


class ManifestImportView(TenantScopedAPIView):
    """POST Chaos Mesh YAML (one or many documents; Content-Type: application/yaml): creates the
    experiments, schedules, workflows and status checks it holds, all or none.

    With `?environment=<name>` it is `kubectl apply`: experiments that exist are updated, and each
    chaos document starts a run against that environment (`&dry_run=true` for dry runs)."""

    model = Experiment
    parser_classes = YAML_PARSERS

    @extend_schema(
        request={YAML_TYPE: {"type": "string"}},
        parameters=[
            OpenApiParameter("environment", str, description="Apply: start a run of each chaos document here."),
            OpenApiParameter("dry_run", bool, description="With environment: dry runs."),
        ],
        responses={201: ManifestItemSerializer(many=True), 400: ManifestErrorSerializer(many=True)},
    )
    def post(self, request: Any, tenant_slug: str) -> Response:
        environment = request.query_params.get("environment") or None
        dry_run = _flag(request.query_params.get("dry_run"), "dry_run")
        try:
            plan = services.import_manifests(
                self.actor, self.tenant, request.data, environment=environment, dry_run=dry_run
            )
        except ManifestErrors as error:
            return Response({"errors": _errors(error)}, status=status.HTTP_400_BAD_REQUEST)
        made, started = iter(plan.objects), {r.experiment_id: r for r in plan.runs}
        flows = {r.workflow_id: r for r in plan.workflow_runs}
        items = []
        for item in plan.items:
            if item["action"] != "skip":
                obj = next(made)
                item = item | {"id": obj.uuid}
                run = started.get(obj.pk) if isinstance(obj, Experiment) else flows.get(obj.pk) if isinstance(
                    obj, Workflow) else None
                if run is not None:
                    item |= {"run": run.uuid, "phase": run.phase}
            items.append(item)
        return Response({"created": items}, status=status.HTTP_201_CREATED)


class ManifestValidateView(TenantScopedAPIView):
    """POST Chaos Mesh YAML: what importing it would create, or every error. Changes nothing."""

    model = Experiment
    parser_classes = YAML_PARSERS
    method_actions = {"POST": "view"}  # it only reads: anyone in the tenant may check a manifest

    @extend_schema(request={YAML_TYPE: {"type": "string"}}, responses={200: ManifestItemSerializer(many=True)})
    def post(self, request: Any, tenant_slug: str) -> Response:
        try:
            plan = services.validate_manifests(self.tenant, request.data)
        except ManifestErrors as error:
            return Response({"valid": False, "errors": _errors(error)})
        return Response({"valid": True, "would_create": plan.items})
