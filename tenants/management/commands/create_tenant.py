"""python manage.py create_tenant SLUG --owner USERNAME [--name NAME] [--exist-ok]"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants import services
from tenants.actors import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create a tenant with an owner (creating the user, with a generated password printed once, if missing)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="username of the first owner")
        parser.add_argument("--name", default="", help="display name (default: the slug)")
        parser.add_argument("--exist-ok", action="store_true", help="exit 0 quietly if the tenant exists")

    def handle(self, *args: Any, slug: str, owner: str, name: str, exist_ok: bool, **options: Any) -> None:
        if exist_ok and Tenant.objects.filter(slug=slug).exists():
            return
        try:
            with transaction.atomic():
                user, password = services.ensure_user(owner)
                tenant = services.create_tenant(Actor.system_actor("system:create_tenant"), slug, name, user)
        except ValidationError as error:
            raise CommandError(_describe(error)) from None
        self.stdout.write(f"created tenant {tenant.slug} with owner {user.get_username()}")
        if password:
            self.stdout.write(f"password for {user.get_username()} (shown once): {password}")


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)
