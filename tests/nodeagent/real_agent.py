"""The real agent daemon (`python -m nodeagent`, real executors) as a subprocess of a test, restartable
on the same journal and state, and a wait for its row to show it connected."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from injector.management.commands.devcerts import DevCerts
from injector.models import Agent
from tests.injector.gateway_harness import wait_until

REPO = Path(__file__).resolve().parents[2]


class AgentRunner:
    """`python -m nodeagent` with the real executors, restartable on the same journal and state."""

    def __init__(
        self, gateway: Any, certs: DevCerts, tmp_path: Path, token: str, labels: dict[str, str] | None = None
    ) -> None:
        self.tmp_path = tmp_path
        self.argv = [
            sys.executable, "-m", "nodeagent", "--gateway", f"127.0.0.1:{gateway.port}", "--ca-file", str(certs.ca),
            "--cert-file", str(certs.agent_cert), "--key-file", str(certs.agent_key), "--journal",
            str(tmp_path / "journal.sqlite3"), "--state-dir", str(tmp_path / "state"), "--lease", "30",
            "--name", "e2e", "--backoff-max", "1",
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSPLANE_AGENT")}
        self.env.update(CHAOSPLANE_AGENT_TOKEN=token, PYTHONPATH=str(REPO))
        if labels:
            self.env["CHAOSPLANE_AGENT_LABELS"] = ",".join(f"{k}={v}" for k, v in labels.items())
        self.process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return (self.tmp_path / "agent.log").read_text()

    def start(self) -> None:
        with open(self.tmp_path / "agent.log", "ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the agent recovers what it holds, then exits
            assert self.process.wait(20) == 0, self.log()



def connected_agent(runner: AgentRunner, after: Any = None) -> Agent:
    def ready() -> Agent | None:
        agent = Agent.objects.filter(environment=runner.environment, name="e2e", connected=True).first()
        return agent if agent and (after is None or agent.connected_at > after) else None

    return wait_until(ready, what=f"the agent to connect; its log:\n{runner.log()}")
