"""python manage.py verify_audit [--tenant SLUG]: exit 1 and name the first broken entry if a chain is off."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants.audit import verify_chain
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log of one tenant or of all."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", help="slug; default: every tenant")

    def handle(self, *args: Any, tenant: str | None, **options: Any) -> None:
        tenants = Tenant.objects.all()
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"tenant: no tenant {tenant!r}")
        broken = []
        for t in tenants.iterator():
            report = verify_chain(t)
            if report.ok:
                self.stdout.write(f"{t.slug}: ok, {report.entries} entries, head {report.head_hash}")
            else:
                broken.append(report)
                self.stdout.write(
                    f"{t.slug}: BROKEN at entry #{report.broken_seq} (id {report.broken_id}): {report.reason}; "
                    f"{report.entries} entries verified before it"
                )
        if broken:
            first = broken[0]
            raise CommandError(f"audit chain broken in {first.tenant} at entry #{first.broken_seq}: {first.reason}")
