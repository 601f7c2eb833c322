"""`make screenshots`: the main portal pages of the demo tenant, rendered by headless Chromium into
docs/screenshots/ (1280 px wide, and 390 px for the home page).

Self-contained, so it works on any machine `make test` works on, without root: a throwaway SQLite
database and Redis, the demo tenant as `make run` makes it (devtools.demo.prepare), then real history
made through the real services: three simulated agents (devtools.simagents, behind the real relay)
take a run of demo-cpu-stress whose steady state a local HTTP server answers, a paused and stopped
run, a dry run, and a dry run of the demo workflow advanced to its end. A live Django server
(pytest-django's LiveServer helper, outside pytest) serves the portal; Playwright signs in as admin.

    python -m devtools.screenshots [--out docs/screenshots]
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "screenshots-password-1"  # noqa: S105 - a throwaway user in a throwaway database

#: (file name, path under /t/demo/ or a callable giving it, width)
PAGES: list[tuple[str, str, int]] = [
    ("home.png", "", 1280),
    ("home-phone.png", "", 390),
    ("experiments.png", "experiments/", 1280),
    ("experiment-new.png", "experiments/new/", 1280),
    ("experiment.png", "{experiment}", 1280),
    ("run.png", "{run}", 1280),
    ("runs.png", "runs/", 1280),
    ("schedules.png", "schedules/", 1280),
    ("workflows.png", "workflows/", 1280),
    ("workflow-run.png", "{workflow_run}", 1280),
    ("events.png", "events/", 1280),
    ("archives.png", "archives/", 1280),
    ("environments.png", "environments/", 1280),
    ("settings.png", "settings/", 1280),
    ("audit.png", "audit/", 1280),
]


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        print(f"no Chromium at {CHROMIUM}: run `make test` once (it installs it)", file=sys.stderr)
        return 1
    from devtools.servers import RedisServer

    with tempfile.TemporaryDirectory(prefix="chaosplane-shots-") as tmp, RedisServer(Path(tmp) / "redis") as redis:
        os.environ.update(
            DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3", REDIS_URL=redis.url, SECRET_KEY=secrets.token_urlsafe(40),
            DEBUG="0", ALLOWED_HOSTS="localhost,127.0.0.1", DJANGO_SETTINGS_MODULE="config.settings",
            LOG_LEVEL="WARNING", DJANGO_ALLOW_ASYNC_UNSAFE="true", AGENT_COMMAND_TIMEOUT="3",
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        targets = seed(redis.url)
        shoot(targets, args.out)
    print(f"wrote {len(PAGES)} screenshots to {args.out}")
    return 0


def seed(redis_url: str) -> dict[str, str]:
    """The demo tenant with history; the paths of the pages that name one object."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from devtools import demo
    from devtools.simagents import SimulatedAgents
    from experiments import runs, services, workflows
    from experiments.models import Experiment, Run, Workflow
    from injector.models import Agent, Environment
    from tenants.actors import Actor
    from tenants.models import Membership, Tenant

    user = get_user_model().objects.create_user("admin", password=PASSWORD)
    tenant = Tenant.objects.create(slug=demo.TENANT, name="Demo")
    Membership.objects.create(tenant=tenant, user=user, role="owner")
    from tenants.models import Policy

    Policy.objects.get_or_create(tenant=tenant)
    demo.prepare(None)  # the environment, experiments, workflow and schedule `make run` makes
    env = Environment.objects.get(tenant=tenant, name=demo.ENVIRONMENT)
    now = timezone.now()
    Agent.objects.bulk_create(
        Agent(tenant=tenant, environment=env, name=name, hostname=f"{name}.demo", labels={"zone": zone},
              connected=True, connected_at=now, last_heartbeat=now, version="0.1.0",
              capabilities={"iptables": {"available": True, "detail": "iptables v1.8.9 (nf_tables)"},
                            "stress-ng": {"available": True, "detail": "stress-ng 0.15.06"},
                            "netem": {"available": False, "detail": "no sch_netem in this kernel"}})
        for name, zone in (("local", "a"), ("web-1", "a"), ("web-2", "b"))
    )
    actor = Actor(user=user)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stress = Experiment.objects.get(tenant=tenant, name="demo-cpu-stress")
    stress = services.update_experiment(actor, stress, {"mode": "all", "selector": {}, "status_checks": [{
        "name": "service-up", "abort": True, "spec": {
            "type": "HTTP", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2,
            "http": {"url": f"http://127.0.0.1:{server.server_address[1]}/", "criteria": {"statusCode": "200"}}}}]})
    ids = list(Agent.objects.filter(environment=env).values_list("uuid", flat=True))
    from experiments import checking

    with SimulatedAgents(redis_url, ids):
        run = runs.start_run(actor, stress, demo.ENVIRONMENT, dry_run=False, publish=False)
        runs.inject(run.pk)
        check = run.checks.filter(purpose="during").first()
        for _ in range(4):
            if check is not None:
                checking.probe_once(check.pk)
            time.sleep(1)
        runs.stop(actor, Run.objects.get(pk=run.pk), publish=False)
        runs.recover(run.pk)
        checking.after_run(run.pk)

        paused = runs.start_run(actor, Experiment.objects.get(tenant=tenant, name="demo-partition"),
                                demo.ENVIRONMENT, dry_run=False, publish=False)
        runs.inject(paused.pk)
        runs.pause(actor, Run.objects.get(pk=paused.pk))
        runs.recover(paused.pk)
        runs.stop(actor, Run.objects.get(pk=paused.pk), publish=False)
        runs.recover(paused.pk)
    dry = runs.start_run(actor, Experiment.objects.get(tenant=tenant, name="demo-loss"), demo.ENVIRONMENT,
                         dry_run=True, publish=False)
    runs.inject(dry.pk)

    flow = Workflow.objects.get(tenant=tenant, name=demo.WORKFLOW["name"])
    wr = workflows.start_workflow(actor, flow, demo.ENVIRONMENT, dry_run=True)
    workflows.advance(wr.pk)
    server.shutdown()
    return {"experiment": f"experiments/{stress.uuid}/", "run": f"runs/{run.uuid}/",
            "workflow_run": f"workflow-runs/{wr.uuid}/"}


def shoot(targets: dict[str, str], out: Path) -> None:
    from playwright.sync_api import sync_playwright
    from pytest_django.live_server_helper import LiveServer

    out.mkdir(parents=True, exist_ok=True)
    server = LiveServer("localhost")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            for width in sorted({w for _, _, w in PAGES}):
                context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
                page = context.new_page()
                page.goto(f"{server.url}/login/")
                page.fill("#id_username", "admin")
                page.fill("#id_password", PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                for name, path, page_width in PAGES:
                    if page_width != width:
                        continue
                    response = page.goto(f"{server.url}/t/demo/{path.format(**targets)}")
                    if response is None or response.status != 200:
                        raise SystemExit(f"{name}: {path} answered {response.status if response else 'nothing'}")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / name), full_page=True)
                context.close()
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
