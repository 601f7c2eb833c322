"""Redis relay: commands from workers to the agent streams this gateway holds, results back.

One dispatcher thread per gateway BLPOPs the command lists of every agent attached here (plus a
wake-up list of its own, so attaching or detaching an agent takes effect at once), so a gateway
with 1,000 streams uses one Redis connection and one thread for commands, not 1,000. Whichever
gateway holds an agent's stream is the one that pops its list, so any number of gateways and
workers can run side by side.

Before anything reaches a stream the relay checks the envelope: addressed to this agent, of the
agent's tenant, not past its deadline. A refusal is answered with an error result and reported to
`Subscriber.refuse` (which audits it).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from injector.drivers.agent import ENVELOPE_VERSION, RESULT_TTL, AgentResult, commands_key, result_key

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how long one BLPOP waits; bounds how late stop() is noticed
KEY_PREFIX, KEY_SUFFIX = commands_key("|").split("|")


@dataclass(eq=False)
class Subscriber:
    """One agent stream: where its commands go, and whom to tell about a refused one."""

    agent_id: str
    tenant_id: int
    deliver: Callable[[dict[str, Any]], bool]  # False: the stream is gone, put the command back
    refuse: Callable[[dict[str, Any], str], None]


class Relay:
    def __init__(self, redis_url: str, gateway: str) -> None:
        self.gateway = gateway
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.wake_key = f"chaosplane:gateway:{gateway}:{uuid.uuid4().hex}:wake"
        self._subscribers: dict[str, Subscriber] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = 0

    # Lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"relay-{self.gateway}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=POLL_SECONDS + 5)
            self._thread = None
        try:
            self.redis.delete(self.wake_key)
        except redis.RedisError:
            pass  # it expires by itself
        self.redis.close()

    # Streams --------------------------------------------------------------------------------------

    def attach(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers[subscriber.agent_id] = subscriber
        self._wake()

    def detach(self, subscriber: Subscriber) -> None:
        with self._lock:
            # A newer stream of the same agent may have replaced this one: leave it in place.
            if self._subscribers.get(subscriber.agent_id) is subscriber:
                del self._subscribers[subscriber.agent_id]
        self._wake()

    def push_result(self, result: AgentResult) -> None:
        key = result_key(result.command_id)
        with self.redis.pipeline() as pipe:
            pipe.rpush(key, result.to_json())
            pipe.expire(key, RESULT_TTL)
            pipe.execute()

    # Dispatch -------------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            with self.redis.pipeline() as pipe:
                pipe.rpush(self.wake_key, "1")
                pipe.expire(self.wake_key, 60)
                pipe.execute()
        except redis.RedisError:
            log.warning("relay %s: cannot reach Redis to wake the dispatcher", self.gateway)

    def _keys(self) -> list[str]:
        with self._lock:
            keys = [commands_key(agent_id) for agent_id in self._subscribers]
        # BLPOP serves the first non-empty list: rotate, so one busy agent cannot starve the rest.
        if keys:
            self._turn = (self._turn + 1) % len(keys)
            keys = keys[self._turn :] + keys[: self._turn]
        return [self.wake_key, *keys]

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self.redis.blpop(self._keys(), timeout=POLL_SECONDS)
            except redis.RedisError as error:
                log.warning("relay %s: Redis error, retrying in 1 s: %s", self.gateway, error)
                self._stopping.wait(1.0)
                continue
            if item is None or item[0] == self.wake_key:
                continue
            key, payload = item
            try:
                self.dispatch(key[len(KEY_PREFIX) : -len(KEY_SUFFIX)], payload)
            except Exception:
                log.exception("relay %s: dispatching a command from %s failed", self.gateway, key)

    def dispatch(self, agent_id: str, payload: str) -> None:
        """Check one popped envelope and pass it to the agent's stream, or refuse it."""
        with self._lock:
            subscriber = self._subscribers.get(agent_id)
        if subscriber is None:
            # The stream ended between BLPOP and now; the agent may be reconnecting elsewhere.
            self.redis.lpush(commands_key(agent_id), payload)
            return
        try:
            envelope = json.loads(payload)
            if not isinstance(envelope, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("relay %s: dropped an unreadable command for agent %s", self.gateway, agent_id)
            return
        command_id = str(envelope.get("command_id", ""))
        reason = self._refusal(subscriber, envelope)
        if reason:
            log.warning("relay %s: refused command %s for agent %s: %s", self.gateway, command_id, agent_id, reason)
            subscriber.refuse(envelope, reason)
            if command_id:
                self.push_result(AgentResult(command_id, ok=False, error=f"refused by the gateway: {reason}"))
            return
        if envelope["deadline_unix_ms"] < time.time() * 1000:
            log.info("relay %s: dropped command %s for agent %s: past its deadline", self.gateway, command_id, agent_id)
            return
        if not subscriber.deliver(envelope):
            self.detach(subscriber)  # so the command put back is not popped here again
            self.redis.lpush(commands_key(agent_id), payload)

    @staticmethod
    def _refusal(subscriber: Subscriber, envelope: dict[str, Any]) -> str:
        if envelope.get("v") != ENVELOPE_VERSION:
            return f"unsupported envelope version {envelope.get('v')!r}"
        if not envelope.get("command_id"):
            return "the command has no id"
        if str(envelope.get("agent_id")) != subscriber.agent_id:
            return "the command is addressed to another agent"
        if envelope.get("tenant_id") != subscriber.tenant_id:
            return "the command's tenant is not the agent's tenant"
        if not isinstance(envelope.get("deadline_unix_ms"), int):
            return "the command has no deadline"
        return ""
