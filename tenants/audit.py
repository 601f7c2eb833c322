"""Writing and verifying the append-only, hash-chained audit log.

`record()` is called by services inside the transaction of the change it describes, so a change and
its entry commit or roll back together. Entries of one tenant are numbered (seq) and chained: each
holds the previous entry's hash and a SHA-256 over its own content plus that hash.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from .actors import Actor
from .models import GENESIS_HASH, AuditEntry, Tenant


def _canonical(value: Any) -> Any:
    """JSON-normalise a before/after payload the way it will read back from the database."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder)) if value is not None else None


def entry_digest(entry: AuditEntry) -> str:
    content = {
        "tenant": entry.tenant_id,
        "seq": entry.seq,
        "created_at": entry.created_at.isoformat(),
        "actor_kind": entry.actor_kind,
        "actor_user": entry.actor_user_id,
        "actor_token": entry.actor_token_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "before": entry.before,
        "after": entry.after,
        "remote_addr": entry.remote_addr,
        "prev_hash": entry.prev_hash,
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def record(
    actor: Actor,
    tenant: Tenant,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Append one entry to `tenant`'s chain, inside the caller's transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id if object_id is not None else obj.pk
    with transaction.atomic():
        # Lock the tenant row: appends to one chain are serialised, other tenants go on in parallel.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk").get()
        last = AuditEntry.objects.filter(tenant=tenant).order_by("-seq").values("seq", "entry_hash").first()
        entry = AuditEntry(
            tenant=tenant,
            seq=(last["seq"] + 1) if last else 1,
            created_at=timezone.now(),
            actor_kind=actor.kind,
            actor_user=actor.user if actor.user is not None and actor.user.is_authenticated else None,
            actor_token=actor.token,
            actor_label=actor.label[:200],
            action=action,
            object_type=object_type or "",
            object_id=str(object_id) if object_id is not None else "",
            before=_canonical(before),
            after=_canonical(after),
            remote_addr=actor.remote_addr,
            prev_hash=last["entry_hash"] if last else GENESIS_HASH,
        )
        entry.entry_hash = entry_digest(entry)
        entry.save(force_insert=True)
    return entry


@dataclass(frozen=True)
class ChainReport:
    tenant: str
    entries: int
    ok: bool
    head_hash: str
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""


def verify_chain(tenant: Tenant, batch_size: int = 2000) -> ChainReport:
    """Walk a tenant's chain in order; report the first entry whose content, link or number is off."""
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    entries: Iterable[AuditEntry] = (
        AuditEntry.objects.filter(tenant=tenant).order_by("seq").iterator(chunk_size=batch_size)
    )
    for entry in entries:
        reason, broken_seq = "", entry.seq
        if entry.seq != expected_seq:
            reason = f"entry #{expected_seq} is missing (removed); the next stored entry is #{entry.seq}"
            broken_seq = expected_seq
        elif entry.prev_hash != expected_prev:
            reason = "link broken: prev_hash does not match the previous entry's hash"
        elif entry_digest(entry) != entry.entry_hash:
            reason = "content changed: the stored hash does not match the entry's content"
        if reason:
            return ChainReport(tenant.slug, count, False, expected_prev, broken_seq, entry.pk, reason)
        expected_prev, expected_seq, count = entry.entry_hash, entry.seq + 1, count + 1
    return ChainReport(tenant.slug, count, True, expected_prev)
