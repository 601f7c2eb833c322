"""API latency and query counts with many tenants: 100 tenants x 1,000 audit entries by default.

    .venv/bin/python bench/api_latency.py [--tenants 100] [--entries 1000] [--requests 200]

Starts its own PostgreSQL (devtools.servers), migrates, seeds every tenant with members, tokens
and a valid hash-chained audit log, then sends requests through the whole Django + DRF stack
in-process (Django's test client, bearer-token auth) and prints p50/p95/p99 and the number of SQL
queries per request for each endpoint. The design's target: p95 under 100 ms, queries constant.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1000, help="audit entries per tenant")
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    args = parser.parse_args()

    from devtools.servers import PostgresServer

    with tempfile.TemporaryDirectory(prefix="chaosplane-bench-") as tmp, PostgresServer(Path(tmp) / "pg") as pg:
        os.environ.update(DATABASE_URL=pg.url, SECRET_KEY=secrets.token_urlsafe(40), DEBUG="0")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        settings.ALLOWED_HOSTS = ["testserver"]
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        token, slug = seed(args.tenants, args.entries)
        print(f"seeded {args.tenants} tenants x {args.entries} audit entries in {time.monotonic() - started:.1f} s")
        measure(token, slug, args.requests, middle_seq=max(1, args.entries // 2))


def seed(tenants: int, entries: int) -> tuple[str, str]:
    """Tenants with three members each, a token per member, and a valid audit chain; returns one
    operator token and its tenant's slug (the middle tenant, so it is no first-row special case)."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from tenants import services
    from tenants.actors import Actor
    from tenants.audit import entry_digest
    from tenants.models import GENESIS_HASH, AuditEntry, Membership, Policy, Tenant

    User = get_user_model()
    system = Actor.system_actor("bench")
    users = User.objects.bulk_create([User(username=f"u{i}") for i in range(tenants * 3)])
    rows = Tenant.objects.bulk_create([Tenant(slug=f"t{i:03d}", name=f"Tenant {i}") for i in range(tenants)])
    Policy.objects.bulk_create([Policy(tenant=t) for t in rows])
    roles = ["owner", "operator", "viewer"]
    Membership.objects.bulk_create(
        [Membership(tenant=t, user=users[i * 3 + r], role=roles[r]) for i, t in enumerate(rows) for r in range(3)]
    )
    chosen = None
    start = timezone.now() - timedelta(days=30)
    for i, tenant in enumerate(rows):
        for r in range(3):
            issued = services.issue_token(system, tenant, f"tok-{r}", roles[r], user=users[i * 3 + r])
            if i == tenants // 2 and r == 1:
                chosen = issued.secret
        last = AuditEntry.objects.filter(tenant=tenant).order_by("-seq").first()
        prev, seq = (last.entry_hash, last.seq) if last else (GENESIS_HASH, 0)
        batch = []
        for n in range(entries - seq):
            seq += 1
            entry = AuditEntry(
                tenant=tenant, seq=seq, created_at=start + timedelta(seconds=seq), actor_kind="system",
                actor_label="bench", action="policy.update", object_type="policy", object_id=str(tenant.pk),
                before={"max_targets": n}, after={"max_targets": n + 1}, prev_hash=prev,
            )
            entry.entry_hash = prev = entry_digest(entry)
            batch.append(entry)
        AuditEntry.objects.bulk_create(batch, batch_size=2000)
    return chosen, rows[tenants // 2].slug


def measure(token: str, slug: str, requests: int, middle_seq: int) -> None:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    endpoints = [
        "/api/v1/tenants/",
        f"/api/v1/tenants/{slug}/",
        f"/api/v1/tenants/{slug}/members/",
        f"/api/v1/tenants/{slug}/tokens/",
        f"/api/v1/tenants/{slug}/policy/",
        f"/api/v1/tenants/{slug}/audit/",
        f"/api/v1/tenants/{slug}/audit/?action=policy.update&page=2",
        f"/api/v1/tenants/{slug}/audit/{middle_seq}/",
    ]
    print(f"{'endpoint':58} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'queries':>8}")
    for path in endpoints:
        for _ in range(5):  # warm up connections and caches
            assert client.get(path).status_code == 200, path
        reset_queries()  # request_started resets the log too; start from empty so the slice is right
        with CaptureQueriesContext(connection) as ctx:
            client.get(path)
        queries = len(ctx.captured_queries)  # read now: the log is cleared by the next request
        timings = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        q = statistics.quantiles(timings, n=100)
        print(f"{path:58} {q[49]:8.1f} {q[94]:8.1f} {q[98]:8.1f} {queries:8d}")


if __name__ == "__main__":
    main()
