"""The agent's one outbound stream to the gateway (chaosplane.agent.v1.AgentGateway/Connect).

Hello first (who we are, what we can do, what we hold), then Welcome back (with a credential on first
registration, stored in the state dir and used from then on), then heartbeats one way and commands
the other; each command is executed through the runtime and answered with a CommandResult.
Reconnects with exponential backoff and jitter.

The lease: the runtime recovers every fault when the gateway has not been heard from for longer than
the lease. Heard from: a Welcome or any message; and, while the stream is up, the transport itself:
gRPC keepalive pings (every lease/4, timing out after lease/4) break a stream whose peer stopped
answering, so a stream still up at time t proves the gateway answered at t - lease/2 or later.
Heartbeats go at least every lease/4 so that the stream always carries data (see _beat); gateways
should still accept pings that often (grpc.http2.min_recv_ping_interval_without_data_ms).

Authentication is a client interceptor adding `authorization: Bearer <token>`.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from nodeagent import convert
from nodeagent.config import AGENT_VERSION, AgentConfig
from nodeagent.orders import Refused
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2, agent_pb2_grpc
from nodeagent.runtime import Runtime

log = logging.getLogger("nodeagent.client")

STATE_FILE = "agent.json"


# The credential ---------------------------------------------------------------------------------------


@dataclass
class Identity:
    agent_id: str = ""
    credential: str = ""

    def __repr__(self) -> str:
        return f"Identity(agent_id={self.agent_id!r})"


class StateStore:
    """The agent id and credential the gateway handed out: STATE_DIR/agent.json, mode 0600."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE

    def load(self) -> Identity:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return Identity()
        return Identity(str(data.get("agent_id", "")), str(data.get("credential", "")))

    def save(self, identity: Identity) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"agent_id": identity.agent_id, "credential": identity.credential}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# Authentication ---------------------------------------------------------------------------------------


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class BearerAuth(grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call; `token` is asked for at each call."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        metadata = [*(client_call_details.metadata or ()), ("authorization", f"Bearer {self._token()}")]
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
            client_call_details.compression,
        )
        return continuation(details, request_iterator)


# Backoff ----------------------------------------------------------------------------------------------


def backoff(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential with jitter: a random delay in [d/2, d], d = min(cap, base * 2**attempt)."""
    delay = min(cap, base * (2 ** min(attempt, 30)))
    return delay / 2 + rng() * delay / 2


# The stream -------------------------------------------------------------------------------------------


class AgentClient:
    def __init__(
        self,
        config: AgentConfig,
        runtime: Runtime,
        *,
        state: StateStore | None = None,
        base_delay: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.state = state or StateStore(config.state_dir)
        self.identity = self.state.load()
        self.base_delay = base_delay
        self.rng = rng
        self.heartbeat_seconds = min(10.0, config.lease / 3)
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._call_lock = threading.Lock()

    # Life -------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, serve, reconnect; until stop()."""
        attempt = 0
        while not self._stop.is_set():
            welcomed = self._session()
            if self._stop.is_set():
                break
            attempt = 0 if welcomed else attempt + 1
            delay = backoff(attempt, base=self.base_delay, cap=self.config.backoff_max, rng=self.rng)
            log.info("reconnecting to %s in %.1f s", self.config.gateway, delay)
            self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()

    def bearer(self) -> str:
        return self.identity.credential or self.config.token or ""

    # One connection ---------------------------------------------------------------------------------

    def _channel(self) -> tuple[grpc.Channel, float]:
        """The channel and its liveness window (seconds after which a dead peer has broken it)."""
        ping = self.runtime.lease / 4
        options = [
            ("grpc.keepalive_time_ms", int(ping * 1000)),
            ("grpc.keepalive_timeout_ms", int(ping * 1000)),
            ("grpc.http2.ping_timeout_ms", int(ping * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.enable_retries", 0),
        ]
        if self.config.insecure_dev:
            channel = grpc.insecure_channel(self.config.gateway, options=options)
        else:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(self.config.ca_file),
                private_key=_read(self.config.key_file),
                certificate_chain=_read(self.config.cert_file),
            )
            channel = grpc.secure_channel(self.config.gateway, creds, options=options)
        return grpc.intercept_channel(channel, BearerAuth(self.bearer)), 2 * ping

    def _hello(self) -> agent_pb2.AgentMessage:
        try:
            capabilities = self.runtime.capabilities()
        except Exception:
            log.exception("could not list capabilities; reporting none")
            capabilities = []
        return convert.hello(
            agent_id=self.identity.agent_id,
            name=self.config.name,
            hostname=self.config.hostname,
            labels=self.config.labels,
            version=AGENT_VERSION,
            capabilities=capabilities,
            held=self.runtime.list(),
        )

    def _session(self) -> bool:
        """One stream, until it breaks or stop(). True if the gateway welcomed us."""
        try:
            channel, window = self._channel()
        except OSError as exc:
            log.error("cannot read TLS files: %s", exc)
            return False
        outbox: queue.Queue[agent_pb2.AgentMessage | None] = queue.Queue()
        done = threading.Event()
        welcomed = False
        using = "credential" if self.identity.credential else "registration token"
        log.info("connecting to %s (%s)", self.config.gateway, using)

        def requests() -> Iterator[agent_pb2.AgentMessage]:
            while True:
                msg = outbox.get()
                if msg is None:
                    return
                yield msg

        beat = threading.Thread(target=self._beat, args=(outbox, done, window), name="heartbeat", daemon=True)
        timer: threading.Timer | None = None
        try:
            outbox.put(self._hello())
            call = agent_pb2_grpc.AgentGatewayStub(channel).Connect(requests())
            with self._call_lock:
                self._call = call
            if self._stop.is_set():
                call.cancel()
            # A gateway that accepts the stream but never welcomes us is dropped (and dialled again).
            def no_welcome() -> None:
                if not welcomed:
                    log.warning("no Welcome from %s within %g s; dropping the stream", self.config.gateway, wait)
                    call.cancel()

            wait = max(5.0, self.runtime.lease)
            timer = threading.Timer(wait, no_welcome)
            timer.daemon = True
            timer.start()
            for msg in call:
                self.runtime.touch()
                body = msg.WhichOneof("body")
                if body == "welcome":
                    self._welcome(msg.welcome)
                    if not welcomed:
                        welcomed = True
                        beat.start()
                elif body == "command":
                    if not welcomed:
                        log.error("the gateway sent a command before Welcome; dropping the stream")
                        break
                    outbox.put(self._execute(msg.command))
            else:
                log.warning("the gateway closed the stream")
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                code = exc.code() if hasattr(exc, "code") else None
                hint = ""
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    hint = f" (the gateway refused our {using})"
                name = code.name if code is not None else "error"
                log.warning("stream to %s ended: %s: %s%s", self.config.gateway, name, _details(exc), hint)
        except Exception:
            log.exception("stream to %s failed", self.config.gateway)
        finally:
            if timer is not None:
                timer.cancel()
            done.set()
            outbox.put(None)
            with self._call_lock:
                self._call = None
            channel.close()
            if beat.is_alive():
                beat.join(timeout=5)
        return welcomed

    def _welcome(self, welcome: agent_pb2.Welcome) -> None:
        changed = False
        if welcome.credential:
            self.identity = Identity(welcome.agent_id or self.identity.agent_id, welcome.credential)
            changed = True
        elif welcome.agent_id and welcome.agent_id != self.identity.agent_id and self.identity.credential:
            self.identity = Identity(welcome.agent_id, self.identity.credential)
            changed = True
        elif welcome.agent_id:
            self.identity.agent_id = welcome.agent_id
        if changed:
            self.state.save(self.identity)
            if welcome.credential:
                log.info("registered as agent %s; credential stored in %s", self.identity.agent_id, self.state.path)
        if welcome.heartbeat_seconds > 0:
            self.heartbeat_seconds = float(welcome.heartbeat_seconds)
        if 0 < welcome.lease_seconds < self.config.lease:
            self.runtime.set_lease(float(welcome.lease_seconds))
        log.info(
            "connected to %s as agent %s (lease %g s, heartbeat %g s, holding %d faults)",
            self.config.gateway,
            self.identity.agent_id or "?",
            self.runtime.lease,
            self.heartbeat_seconds,
            self.runtime.count(),
        )

    def _beat(self, outbox: queue.Queue, done: threading.Event, window: float) -> None:
        """Heartbeats; and while the stream is up, it counts as contact (see the module docstring).

        Sent every heartbeat_seconds, or every lease/4 if that is sooner: a stream that carries data
        needs no keepalive pings, and gRPC servers with default options answer pings on a stream
        without data with GOAWAY too_many_pings."""
        next_beat = 0.0
        while True:
            now = time.monotonic()
            self.runtime.touch(now - window)
            if now >= next_beat:
                outbox.put(convert.heartbeat(time.time(), self.runtime.count()))
                next_beat = now + min(self.heartbeat_seconds, self.runtime.lease / 4)
            if done.wait(self.runtime.lease / 8):
                return

    # Commands ---------------------------------------------------------------------------------------

    def _execute(self, cmd: agent_pb2.Command) -> agent_pb2.AgentMessage:
        op = cmd.WhichOneof("op") or "?"
        what = op
        if op == "inject":
            what = f"inject fault {cmd.inject.fault_id} ({cmd.inject.kind}/{cmd.inject.action})"
        elif op == "recover":
            what = f"recover fault {cmd.recover.fault_id}"
        if cmd.deadline_unix_ms and convert.to_ms(time.time()) > cmd.deadline_unix_ms:
            error = "not executed: its deadline had passed when it arrived"
            log.warning("command %s %s: skipped: %s", cmd.command_id, what, error)
            return convert.result(cmd.command_id, ok=False, error=error)
        held: list = []
        try:
            if op == "inject":
                order = convert.order_from_inject(cmd.inject)
                detail = self.runtime.inject(order)
                held = [order]
            elif op == "recover":
                did = self.runtime.recover(cmd.recover.fault_id, "recover command")
                detail = "recovered" if did else "not held: nothing to do"
            elif op == "recover_all":
                ids = self.runtime.recover_all(f"recover-all command: {cmd.recover_all.reason}".rstrip(": "))
                detail = f"recovered {len(ids)} fault(s)"
            elif op == "list":
                held = self.runtime.list()
                detail = f"{len(held)} fault(s) held"
            else:
                raise Refused(f"unknown command {op!r}; this agent is version {AGENT_VERSION}")
        except Refused as exc:
            log.info("command %s %s: refused: %s", cmd.command_id, what, exc)
            return convert.result(cmd.command_id, ok=False, error=str(exc))
        except Exception as exc:
            log.exception("command %s %s: failed", cmd.command_id, what)
            return convert.result(cmd.command_id, ok=False, error=f"{exc}")
        log.info("command %s %s: ok: %s", cmd.command_id, what, detail)
        return convert.result(cmd.command_id, ok=True, detail=detail, held=held)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _details(exc: grpc.RpcError) -> str:
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return str(details or "").strip()
