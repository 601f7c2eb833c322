"""GET /api/v1/catalog/: every kind and action with a JSON Schema of its parameters."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from injector.faults import catalog


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    return {"apiVersion": "chaos-mesh.org/v1alpha1", "kinds": catalog()}


class CatalogView(APIView):
    """The fault catalogue: kinds, actions, their targets, one-shot flag, the agent capability they
    need, and a JSON Schema of their parameters (labels, help, units, defaults, enums) that the
    portal builds its forms from and clients validate with."""

    @extend_schema(responses=OpenApiResponse(description="Every kind with its actions and parameter schemas."))
    def get(self, request: Any) -> Response:
        return Response(_catalog())
