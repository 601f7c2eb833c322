"""Simulated node agents: they take commands from the real relay in Redis (the lists a gateway would
read for them) and acknowledge without acting, keeping the faults they were told to hold in memory.

For tests of the run lifecycle that need many agents or a misbehaving one, and for bench/run_latency.py.
The control plane's side is all real (drivers, relay, Redis); only what is behind the gateway is not.
A test that must show a fault really lands uses the real agent (tests/nodeagent/test_end_to_end.py,
tests/experiments/test_runs_e2e.py).

    with SimulatedAgents(redis_url, [agent.uuid for agent in agents]) as sim:
        ...
        assert sim.held(agent.uuid) == {"cp-...-1-0"}
"""
from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import redis

from injector.drivers.agent import RESULT_TTL, AgentResult, commands_key, result_key

CHUNK = 64  # agents per serving thread


class SimulatedAgents:
    def __init__(self, redis_url: str, agent_ids: list[Any]) -> None:
        self.redis_url = redis_url
        self.agent_ids = [str(a) for a in agent_ids]
        self.faults: dict[str, set[str]] = defaultdict(set)
        self.commands: list[dict[str, Any]] = []
        #: agent id -> error text: that agent refuses every inject
        self.refuse: dict[str, str] = {}
        #: agent ids that never answer (as if disconnected)
        self.silent: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def held(self, agent_id: Any) -> set[str]:
        with self._lock:
            return set(self.faults[str(agent_id)])

    def all_held(self) -> dict[str, set[str]]:
        with self._lock:
            return {a: set(f) for a, f in self.faults.items() if f}

    def start(self) -> SimulatedAgents:
        # One BLPOP names every key it waits on, so a thousand agents share a few threads, each
        # waiting on a slice of them: as a fleet of agents answers in parallel.
        keys = [commands_key(a).encode() for a in self.agent_ids]
        for i in range(0, len(keys), CHUNK):
            thread = threading.Thread(target=self._serve, args=(keys[i:i + CHUNK],), name=f"simulated-agents-{i}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> SimulatedAgents:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _serve(self, keys: list[bytes]) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            while not self._stop.is_set():
                item = client.blpop(keys, timeout=0.2)
                if item is None:
                    continue
                envelope = json.loads(item[1])
                result = self._handle(envelope)
                if result is None:
                    continue
                with client.pipeline() as pipe:
                    pipe.rpush(result_key(result.command_id), result.to_json())
                    pipe.expire(result_key(result.command_id), RESULT_TTL)
                    pipe.execute()
        finally:
            client.close()

    def _handle(self, envelope: dict[str, Any]) -> AgentResult | None:
        agent, op, args, command_id = envelope["agent_id"], envelope["op"], envelope["args"], envelope["command_id"]
        with self._lock:
            self.commands.append(envelope)
            if agent in self.silent:
                return None
            if op == "inject":
                if agent in self.refuse:
                    return AgentResult(command_id, False, error=self.refuse[agent])
                self.faults[agent].add(args["fault_id"])
                return AgentResult(command_id, True, detail=f"simulated {args['kind']} {args['action']}")
            if op == "recover":
                self.faults[agent].discard(args["fault_id"])
            elif op == "recover_all":
                self.faults[agent].clear()
            return AgentResult(command_id, True)
