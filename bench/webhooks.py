"""What webhooks cost: the receiver on the run lifecycle's events, fan-out, and one delivery attempt.

    .venv/bin/python bench/webhooks.py [--webhooks 10] [--events 500] [--attempts 500]

Starts its own PostgreSQL and Redis (devtools.servers), migrates, makes a tenant, and prints:

- the cost a noticed Event row adds to its writer when the tenant has no webhook (one EXISTS query), and
  when it has `--webhooks` (the savepoint, the notice), p50/p99 per Event.objects.create;
- fan-out on commit to `--webhooks` webhooks (their delivery rows and published first attempts);
- one attempt (claim, sign, POST to a local receiver answering 200, record): p50/p99 and attempts/s.

Tasks go to the bench's own Redis that no worker reads: the figures are the control plane's own work.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, platform_database  # noqa: E402


class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--attempts", type=int, default=500)
    args = parser.parse_args()

    with platform_database():
        server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            measure(args, f"http://127.0.0.1:{server.server_address[1]}/hook")
        finally:
            server.shutdown()


def measure(args: argparse.Namespace, url: str) -> None:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from experiments.models import Event
    from reports import services, webhooks
    from reports.models import WebhookDelivery
    from tenants import services as tenant_services
    from tenants.actors import Actor

    system = Actor.system_actor("bench")
    owner = get_user_model().objects.create_user("owner")
    tenant = tenant_services.create_tenant(system, "bench", "Bench", owner)

    def create_events(count: int) -> list[float]:
        samples = []
        for i in range(count):
            started = time.perf_counter()
            with transaction.atomic():
                Event.objects.create(tenant=tenant, reason="TenantHalted", object_type="tenant", object_id="bench",
                                     message=f"bench {i}")
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    for webhook_count in (0, args.webhooks):
        for i in range(webhook_count):
            services.create_webhook(system, tenant, {"name": f"hook-{i}", "url": url})
        WebhookDelivery.objects.all().delete()
        samples = create_events(args.events)
        p50, p99 = percentiles(samples)
        made = WebhookDelivery.objects.count()
        print(f"Event write with {webhook_count:>3} webhooks (notice + fan-out on commit, {made} deliveries): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    due = list(WebhookDelivery.objects.values_list("pk", flat=True)[:args.attempts])
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    samples = []
    started_all = time.perf_counter()
    for pk in due:
        started = time.perf_counter()
        assert webhooks.attempt(pk) == "delivered"
        samples.append((time.perf_counter() - started) * 1000)
    elapsed = time.perf_counter() - started_all
    p50, p99 = percentiles(samples)
    print(f"one attempt (claim, sign, POST to localhost, record) over {len(due)}: p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms; {len(due) / elapsed:.0f} attempts/s in one process")


if __name__ == "__main__":
    main()
