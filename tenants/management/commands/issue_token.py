"""python manage.py issue_token --tenant SLUG --user USERNAME --role ROLE [--name NAME] [--expires-in-days N]

Prints the token alone on stdout, so scripts can capture it: TOKEN=$(python manage.py issue_token ...)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenants import services
from tenants.actors import Actor
from tenants.models import Tenant

from .create_tenant import _describe


class Command(BaseCommand):
    help = "Issue an API token for a member of a tenant; prints only the token."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--user", required=True)
        parser.add_argument("--role", required=True, help="owner, operator or viewer (at most the user's role)")
        parser.add_argument("--name", default=None, help="default: cli-<timestamp>")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, **o: Any) -> None:
        tenant = Tenant.objects.filter(slug=o["tenant"]).first()
        if tenant is None:
            raise CommandError(f"tenant: no tenant {o['tenant']!r}")
        user = get_user_model().objects.filter(username=o["user"]).first()
        if user is None:
            raise CommandError(f"user: no user {o['user']!r}")
        name = o["name"] or f"cli-{timezone.now():%Y%m%d-%H%M%S}"
        try:
            issued = services.issue_token(
                Actor.system_actor("system:issue_token"), tenant, name, o["role"], o["expires_in_days"], user=user
            )
        except ValidationError as error:
            raise CommandError(_describe(error)) from None
        self.stdout.write(issued.secret)
