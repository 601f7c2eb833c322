"""python -m nodeagent --gateway HOST:PORT --ca-file CA.pem [--state-dir DIR] ...  (see --help)

Starts by recovering whatever the journal says a previous process left applied, then dials the
gateway and serves it until SIGTERM or SIGINT, when it recovers every fault it holds and exits.
Exit status 2: a bad setting (the message names the flag).

CHAOSPLANE_AGENT_EXECUTOR=module:attribute replaces the executors (nodeagent.executors) with another
object of the same API; for tests and development only.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from nodeagent.config import PREFIX, ConfigError, parse

log = logging.getLogger("nodeagent")


def load_executor(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj() if isinstance(obj, type) else obj


def main(argv: Sequence[str] | None = None, executor: Any = None) -> int:
    try:
        config = parse(argv)
    except ConfigError as exc:
        print(f"chaosplane-agent: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from nodeagent.client import AgentClient, StateStore
    from nodeagent.journal import Journal
    from nodeagent.runtime import Runtime

    if config.insecure_dev:
        log.warning("--insecure-dev: plaintext to %s, the gateway is not verified; development only", config.gateway)
    state = StateStore(config.state_dir)
    if not state.load().credential and not config.token:
        print(
            f"chaosplane-agent: error: --token: required for the first registration "
            f"(no credential in {state.path}); best given as ${PREFIX}TOKEN",
            file=sys.stderr,
        )
        return 2
    spec = os.environ.get(PREFIX + "EXECUTOR", "")
    if executor is None and spec:
        log.warning("using the executor %s instead of nodeagent.executors", spec)
        executor = load_executor(spec)

    journal = Journal(config.journal)
    runtime = Runtime(journal, executor, lease=config.lease)
    left = runtime.start()  # before connecting anywhere
    if left:
        log.warning("recovered %d fault(s) a previous process left: %s", len(left), ", ".join(left))
    client = AgentClient(config, runtime, state=state)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        threading.Thread(target=client.stop, name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "agent %s starting (gateway %s, lease %g s, journal %s)", config.name, config.gateway, config.lease,
        config.journal,
    )
    try:
        client.run()
    finally:
        runtime.close(recover=True)
        journal.close()
        log.info("agent stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
