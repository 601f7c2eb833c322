"""The agent gateway: agents dial in over gRPC (TLS, optionally mutual), workers reach them via Redis.

    gateway = AgentGateway("0.0.0.0:7443", redis_url=..., tls=TlsFiles(cert, key, client_ca))
    gateway.start(); ...; gateway.stop()

`manage.py agentgateway` runs one; any number may run side by side (see relay).
"""
from __future__ import annotations

import logging
import socket
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from django.conf import settings

from nodeagent.proto.chaosplane.agent.v1 import agent_pb2_grpc

from .auth import AgentAuthInterceptor
from .relay import Relay
from .servicer import AgentGatewayServicer

log = logging.getLogger(__name__)

__all__ = ["AgentGateway", "TlsFiles"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: agents must present a certificate signed by this CA

    def credentials(self) -> grpc.ServerCredentials:
        ca = Path(self.client_ca).read_bytes() if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(Path(self.key).read_bytes(), Path(self.cert).read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


class AgentGateway:
    def __init__(
        self,
        listen: str,
        *,
        tls: TlsFiles | None,
        redis_url: str | None = None,
        name: str | None = None,
        max_streams: int | None = None,
    ) -> None:
        """`tls=None` listens in plain text: for development only (the command asks for --insecure-dev)."""
        self.listen = listen
        self.tls = tls
        self.name = name or f"{socket.gethostname()}-{listen.rsplit(':', 1)[-1]}"
        self.max_streams = max_streams or getattr(settings, "AGENT_GATEWAY_MAX_STREAMS", 1024)
        self.relay = Relay(redis_url or settings.REDIS_URL, self.name)
        self.servicer = AgentGatewayServicer(
            self.relay,
            self.name,
            lease_seconds=getattr(settings, "AGENT_LEASE_SECONDS", 60),
            heartbeat_seconds=getattr(settings, "AGENT_HEARTBEAT_SECONDS", 10),
        )
        # The sync server holds each stream on one pool thread: the pool is the stream limit, and
        # maximum_concurrent_rpcs makes one more agent get RESOURCE_EXHAUSTED instead of waiting.
        self.pool = futures.ThreadPoolExecutor(max_workers=self.max_streams + 4, thread_name_prefix="gateway")
        self.server = grpc.server(
            self.pool,
            interceptors=[AgentAuthInterceptor()],
            maximum_concurrent_rpcs=self.max_streams,
            options=[
                # Find agents that vanished without closing (host died, network cut) within a minute.
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
                # Agents ping every lease/4 to notice a frozen gateway; accept pings that often
                # rather than answering them with GOAWAY too_many_pings.
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 1_000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        agent_pb2_grpc.add_AgentGatewayServicer_to_server(self.servicer, self.server)
        self.port = 0

    def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        if self.tls is None:
            self.port = self.server.add_insecure_port(self.listen)
        else:
            self.port = self.server.add_secure_port(self.listen, self.tls.credentials())
        if not self.port:
            raise OSError(f"agent gateway: cannot listen on {self.listen}")
        self.relay.start()
        self.server.start()
        log.info("agent gateway %s listening on %s (%s)", self.name, self.listen, "TLS" if self.tls else "PLAINTEXT")
        return self.port

    def wait(self) -> None:
        self.server.wait_for_termination()

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving: streams end (agents are marked disconnected), then the relay stops."""
        self.server.stop(grace).wait()
        self.servicer.wait_for_readers(grace + 5)
        self.pool.shutdown(wait=True)
        self.relay.stop()
