"""Field groups that several kinds share."""
from __future__ import annotations

from .params import Field, ListOf, Str

CONTAINER_NAME = Str(
    min_length=1, max_length=63, pattern=r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", pattern_help="a container name"
)

CONTAINER_NAMES = Field(
    "containerNames",
    ListOf(CONTAINER_NAME, unique=True),
    label="Containers",
    help="Only these containers of each selected pod (default: every container).",
)

REMOTE_CLUSTER = Field(
    "remoteCluster",
    Str(min_length=1, max_length=253),
    label="Remote cluster",
    help="Chaos Mesh's multi-cluster target; here, the name of another Kubernetes environment of the tenant.",
)

SECRET_NAME = Field(
    "secretName",
    Str(min_length=1, max_length=253, pattern=r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", pattern_help="a name"),
    label="Credentials",
    help="The name of the credentials to use (an environment's stored secret); never the keys themselves.",
)
