"""The demo that `make run` sets up beside the platform, so that there is something to break at once.

    python -m devtools.demo prepare [--agent-state DIR]    (Django settings from the environment)
    python -m devtools.demo serve                          (run by make run inside the demo namespace)

- `prepare`, in tenant `demo`: the `hosts` environment `local` (created if missing) and the ready-made
  experiments (each created once, skipped when its name exists). With `--agent-state` (the local agent's
  state dir), it also makes sure that agent can get in: a stored credential this database does not know
  is removed, and then a registration token is made (a new environment's, or a rotated one). It writes
  one JSON line on stdout, which holds that token: the caller reads it from a pipe, gives it to the agent
  in its environment and never prints it. Everything meant for people goes to stderr.
- `serve`: a tiny HTTP server on 10.203.0.2:8080 answering "ok from the demo service", whose process is
  named `cpdemo-web` (what the demo-kill experiment signals).
- network_up() / network_down(): the network namespace `chaosplane-demo` with a veth pair, host side
  `cpdemo0` 10.203.0.1/30, namespace side `cpdemo1` 10.203.0.2/30. Root on Linux only; every command is
  an argv list of constants.

Nothing here imports Django at module level: devtools.run imports this module for the names and the
network steps.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NETNS = "chaosplane-demo"
HOST_IF, NS_IF = "cpdemo0", "cpdemo1"
HOST_IP, SERVICE_IP, PREFIXLEN = "10.203.0.1", "10.203.0.2", 30
NETWORK = "10.203.0.0/30"
SERVICE_PORT = 8080
SERVICE_URL = f"http://{SERVICE_IP}:{SERVICE_PORT}/"
SERVICE_COMM = "cpdemo-web"  # the service's process name (/proc/PID/comm, at most 15 characters)
SERVICE_ANSWER = b"ok from the demo service\n"

TENANT, ENVIRONMENT, AGENT_NAME = "demo", "local", "local"
AGENT_LABEL = "chaosplane.io/role=demo"

# One process at a time may own the names above: an abstract Unix socket, gone with its process.
_LOCK_NAME = b"\0chaosplane-demo-network"

_COMMON = {"kind": "PhysicalMachineChaos", "selector": {"agents": [AGENT_NAME]}, "mode": "one", "duration": "30s"}
EXPERIMENTS: list[dict[str, Any]] = [
    _COMMON | {
        "name": "demo-partition",
        "description": "Cut the host off from the demo service for 30 s: curl http://10.203.0.2:8080/ times out.",
        "action": "network-partition",
        "params": {"network-partition": {"direction": "to", "ip-address": SERVICE_IP, "device": HOST_IF}},
    },
    _COMMON | {
        "name": "demo-loss",
        "description": "Drop half of the host's packets to the demo service for 30 s: curl gets slow or fails.",
        "action": "network-loss",
        "params": {"network-loss": {"percent": "50", "ip-address": SERVICE_IP, "device": HOST_IF}},
    },
    _COMMON | {
        "name": "demo-cpu-stress",
        "description": "One stress-ng worker loading a CPU of the host to 50% for 30 s.",
        "action": "stress-cpu",
        "params": {"stress-cpu": {"load": 50, "workers": 1}},
    },
    _COMMON | {
        "name": "demo-kill",
        "description": "SIGKILL the demo service; make run starts it again after a short pause.",
        "action": "process",
        "params": {"process": {"process": SERVICE_COMM, "signal": 9}},
    },
]


def _host_fault(name: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "templateType": "PhysicalMachineChaos", "deadline": "15s", "physicalmachineChaos": {
        "action": action, "mode": "one", "selector": {"agents": [AGENT_NAME]}, action: params}}


#: A game day: cut the service, breathe, then loss and CPU stress side by side, while a status check
#: watches the service (it fails under the partition; abortWithStatusCheck is off, so the run goes on).
WORKFLOW: dict[str, Any] = {
    "name": "demo-game-day",
    "description": "Partition 15 s, wait 5 s, then 50% loss and CPU stress together for 15 s, the service watched.",
    "spec": {"entry": "game-day", "templates": [
        {"name": "game-day", "templateType": "Parallel", "deadline": "60s", "children": ["steps", "watch"]},
        {"name": "steps", "templateType": "Serial", "children": ["cut", "breathe", "pressure"]},
        _host_fault("cut", "network-partition", EXPERIMENTS[0]["params"]["network-partition"]),
        {"name": "breathe", "templateType": "Suspend", "deadline": "5s"},
        {"name": "pressure", "templateType": "Parallel", "children": ["lossy", "busy"]},
        _host_fault("lossy", "network-loss", EXPERIMENTS[1]["params"]["network-loss"]),
        _host_fault("busy", "stress-cpu", EXPERIMENTS[2]["params"]["stress-cpu"]),
        {"name": "watch", "templateType": "StatusCheck", "deadline": "40s", "statusCheck": {
            "type": "HTTP", "mode": "Continuous", "duration": "40s", "intervalSeconds": 2, "timeoutSeconds": 1,
            "failureThreshold": 3, "http": {"url": f"http://{SERVICE_IP}:{SERVICE_PORT}/",
                                            "criteria": {"statusCode": "200"}}}},
    ]},
}
#: Created paused, so nothing fires behind anyone's back: resume it to see a tick a minute.
SCHEDULE: dict[str, Any] = {
    "name": "demo-every-minute", "cron": "* * * * *", "time_zone": "UTC", "experiment": "demo-cpu-stress",
    "environment": ENVIRONMENT, "dry_run": True, "paused": True, "history_limit": 10,
    "description": "A dry run of demo-cpu-stress every minute (paused; resume it to watch ticks).",
}


class DemoError(RuntimeError):
    """The demo network could not be set up (the message says why)."""


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# Can it run here? ---------------------------------------------------------------------------------


def unsupported_reason() -> str | None:
    """Why the local agent and the demo service cannot run on this machine, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "they need Linux (network namespaces and iptables)"
    if os.geteuid() != 0:
        return "they need root (network namespaces and iptables); run `make run` as root to get them"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (Debian: apt-get install iproute2 iptables)"
    return None


def acquire_lock() -> socket.socket | None:
    """Hold the demo's names for this process (released when it closes the socket or dies), or None
    when another `make run` on this machine holds them."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(_LOCK_NAME)
    except OSError:
        sock.close()
        return None
    return sock


# The network --------------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    if check and result.returncode != 0:
        raise DemoError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.returncode}")
    return result


def netns_exists() -> bool:
    return NETNS in _ip("netns", "list", check=False).stdout.split()


def link_exists(name: str = HOST_IF) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def network_down() -> list[str]:
    """Remove the demo namespace (killing what still runs in it) and the veth; what was removed."""
    removed = []
    if netns_exists():
        for pid_text in _ip("netns", "pids", NETNS, check=False).stdout.split():
            if pid_text.isdigit() and int(pid_text) > 1 and int(pid_text) != os.getpid():
                try:
                    os.kill(int(pid_text), signal.SIGKILL)
                    removed.append(f"process {pid_text}")
                except ProcessLookupError:
                    pass
        _ip("netns", "del", NETNS)
        removed.append(f"network namespace {NETNS}")
    if link_exists():  # normally gone with its peer; left when something held the namespace open
        _ip("link", "del", "dev", HOST_IF)
        removed.append(f"link {HOST_IF}")
    return removed


def _address_in_use() -> str | None:
    """The interface that already has an address in 10.203.0.0/30, if any (not ours: ours are removed first)."""
    ours = ipaddress.ip_network(NETWORK)
    for link in json.loads(_ip("-j", "addr", "show").stdout or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("family") != "inet":
                continue
            net = ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if net.overlaps(ours):
                return f"{link.get('ifname')} ({addr['local']}/{addr['prefixlen']})"
    return None


def network_up() -> None:
    """Create the namespace and the veth pair with their addresses; on any failure remove them again."""
    holder = _address_in_use()
    if holder is not None:
        raise DemoError(f"{NETWORK} is already used on this host by {holder}; not creating the demo network")
    _ip("netns", "add", NETNS)
    try:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NETNS)
        _ip("addr", "add", f"{HOST_IP}/{PREFIXLEN}", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("-n", NETNS, "addr", "add", f"{SERVICE_IP}/{PREFIXLEN}", "dev", NS_IF)
        _ip("-n", NETNS, "link", "set", NS_IF, "up")
        _ip("-n", NETNS, "link", "set", "lo", "up")
    except BaseException:
        network_down()
        raise


def service_argv(python: str) -> list[str]:
    """The demo service, started inside the namespace (`ip netns exec` execs it: same pid)."""
    return ["ip", "netns", "exec", NETNS, python, "-m", "devtools.demo", "serve"]


# serve ----------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "chaosplane-demo"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(SERVICE_ANSWER)))
        self.end_headers()
        self.wfile.write(SERVICE_ANSWER)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
        note(f"{self.address_string()} {format % args}")


def serve() -> int:
    try:  # the name a process fault finds it by
        Path("/proc/self/comm").write_text(SERVICE_COMM)
    except OSError:
        pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((SERVICE_IP, SERVICE_PORT), _Handler)
    note(f"{SERVICE_COMM} (pid {os.getpid()}) answers on {SERVICE_URL}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# prepare --------------------------------------------------------------------------------------------


def prepare(agent_state: Path | None) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.exceptions import ValidationError

    from experiments import services as experiment_services
    from experiments.models import Experiment
    from injector import services as injector_services
    from injector.models import Environment
    from tenants.actors import Actor
    from tenants.models import Tenant

    system = Actor.system_actor("system:make-run")
    tenant = Tenant.objects.filter(slug=TENANT).first()
    if tenant is None:
        raise DemoError(f"no tenant {TENANT!r} (make run creates it with `manage.py create_tenant`)")
    environment = Environment.objects.filter(tenant=tenant, name=ENVIRONMENT).first()
    token: str | None = None
    if environment is None:
        environment, token = injector_services.create_environment(system, tenant, ENVIRONMENT, "hosts")
        note(f"created the hosts environment {ENVIRONMENT!r} in tenant {TENANT}")
    elif environment.kind != Environment.Kind.HOSTS:
        raise DemoError(f"tenant {TENANT} has an environment {ENVIRONMENT!r} of kind {environment.kind}, not hosts")

    if agent_state is None:
        token = None  # no agent here: the token of a new environment is not needed
    elif _stored_credential_works(agent_state, environment, injector_services):
        token = None  # the agent comes back with its own credential
    elif token is None:
        token = injector_services.rotate_registration_token(system, environment)
        note(f"a new registration token for {TENANT}/{ENVIRONMENT}, handed to the local agent")

    made, listed = [], []
    for data in EXPERIMENTS:
        experiment = Experiment.objects.filter(tenant=tenant, name=data["name"]).first()
        if experiment is None:
            try:
                experiment = experiment_services.create_experiment(system, tenant, data)
            except ValidationError as error:  # the catalogue changed under the demo: say so, go on
                note(f"experiment {data['name']} not created: {'; '.join(error.messages)}")
                continue
            made.append(experiment.name)
        listed.append({"name": experiment.name, "id": str(experiment.uuid), "action": experiment.action})
    if made:
        note(f"created the experiments {', '.join(made)} in tenant {TENANT}")
    _prepare_workflow_and_schedule(system, tenant, experiment_services)
    return {
        "token": token,
        "environment": ENVIRONMENT,
        "experiments": listed,
    }


def _prepare_workflow_and_schedule(system: Any, tenant: Any, services: Any) -> None:
    """The demo workflow and the (paused) demo schedule, each made once."""
    from django.core.exceptions import ValidationError

    from experiments.models import Schedule, Workflow

    steps = ((Workflow, WORKFLOW, services.save_workflow), (Schedule, SCHEDULE, services.save_schedule))
    for model, data, save in steps:
        if model.objects.filter(tenant=tenant, name=data["name"]).exists():
            continue
        try:
            save(system, tenant, data)
        except ValidationError as error:  # the catalogue changed under the demo: say so, go on
            note(f"{model._meta.verbose_name} {data['name']} not created: {'; '.join(error.messages)}")
            continue
        note(f"created the {model._meta.verbose_name} {data['name']} in tenant {TENANT}")


def _stored_credential_works(agent_state: Path, environment: Any, services: Any) -> bool:
    """True when the agent's stored credential belongs to our agent in this database; a stored credential
    that does not (a fresh database, another environment) is removed, so the agent registers again."""
    path = agent_state / "agent.json"  # nodeagent.client.StateStore's file
    try:
        credential = str(json.loads(path.read_text()).get("credential", ""))
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError):
        credential = ""
    agent = services.agent_for_credential(credential) if credential else None
    if agent is not None and agent.environment_id == environment.pk and agent.name == AGENT_NAME:
        return True
    path.unlink(missing_ok=True)
    note(f"the local agent's stored credential is not valid here; removed {path}, it registers again")
    return False


# main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="environment, experiments and (with --agent-state) a token; JSON")
    prep.add_argument("--agent-state", type=Path, help="the local agent's --state-dir")
    commands.add_parser("serve", help="the demo HTTP service (inside the demo namespace)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        result = prepare(args.agent_state)
    except DemoError as error:
        note(f"error: {error}")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")  # to the parent's pipe only
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
