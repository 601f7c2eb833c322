"""Agent authentication, as one gRPC server interceptor: no RPC of the servicer runs unauthenticated.

`authorization: Bearer <token>` metadata carries either the registration token of a `hosts`
environment (cpr_..., first contact) or an agent's own credential (cpa_...). Anything else is
UNAUTHENTICATED, with the same words whatever was wrong, so a caller learns nothing by probing.

gRPC runs interceptors on its polling thread, which serves every connection: a database lookup
there would stall them all. So the interceptor only wraps the handler, and the lookup runs first
thing in the RPC's own worker thread. The servicer reads the result with `principal_of(context)`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from django.db import connection

from injector import services
from injector.models import CREDENTIAL_MARK, REGISTRATION_MARK, Agent, Environment

UNAUTHENTICATED_DETAILS = "missing or invalid agent token (send 'authorization: Bearer <token>')"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a new agent with its environment's registration token, or a known agent."""

    environment: Environment
    agent: Agent | None = None  # None: registration (the agent has no credential yet)

    @property
    def is_registration(self) -> bool:
        return self.agent is None


class AuthenticatedContext:
    """The RPC's ServicerContext, plus the principal the interceptor established."""

    def __init__(self, context: grpc.ServicerContext, principal: Principal) -> None:
        self._context = context
        self.principal = principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def principal_of(context: Any) -> Principal:
    if not isinstance(context, AuthenticatedContext):
        raise RuntimeError("the agent gateway servicer must run behind AgentAuthInterceptor")
    return context.principal


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None


def authenticate(raw: str | None) -> Principal | None:
    if not raw:
        return None
    try:
        if raw.startswith(f"{CREDENTIAL_MARK}_"):
            agent = services.agent_for_credential(raw)
            return Principal(agent.environment, agent) if agent is not None else None
        if raw.startswith(f"{REGISTRATION_MARK}_"):
            env = services.environment_for_registration(raw)
            return Principal(env) if env is not None else None
        return None
    finally:
        connection.close()  # the stream thread holds no connection while it waits


class AgentAuthInterceptor(grpc.ServerInterceptor):
    def intercept_service(
        self, continuation: Callable[[Any], grpc.RpcMethodHandler | None], handler_call_details: Any
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _guarded(handler, bearer_token(handler_call_details.invocation_metadata))


def _guarded(handler: grpc.RpcMethodHandler, raw: str | None) -> grpc.RpcMethodHandler:
    def guard(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def authenticated(request: Any, context: grpc.ServicerContext) -> Any:
            principal = authenticate(raw)
            if principal is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)
            return behavior(request, AuthenticatedContext(context, principal))

        return authenticated

    options = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(guard(handler.stream_stream), **options)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(guard(handler.stream_unary), **options)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(guard(handler.unary_stream), **options)
    return grpc.unary_unary_rpc_method_handler(guard(handler.unary_unary), **options)
