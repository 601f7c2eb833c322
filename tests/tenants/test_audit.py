"""The audit log: one entry per mutating call, in the same transaction as the change; append-only;
hash-chained so that tampering with any stored entry is found and named by verify_audit."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError

from tenants import services
from tenants.audit import verify_chain
from tenants.models import ApiToken, AuditEntry, Membership

T = "/api/v1/tenants/acme"

MUTATIONS = [
    ("post", "/api/v1/tenants/", {"slug": "initech", "name": "Initech"}, "tenant.create", "initech"),
    ("patch", f"{T}/", {"name": "Acme 2"}, "tenant.update", "acme"),
    ("post", f"{T}/members/", {"username": "dave", "role": "viewer"}, "member.add", "acme"),
    ("patch", f"{T}/members/carol/", {"role": "operator"}, "member.update", "acme"),
    ("delete", f"{T}/members/carol/", None, "member.remove", "acme"),
    ("post", f"{T}/tokens/", {"name": "ci", "role": "viewer"}, "token.create", "acme"),
    ("delete", f"{T}/tokens/{{token}}/", None, "token.revoke", "acme"),
    ("patch", f"{T}/policy/", {"max_targets": 3, "dry_run_by_default": True}, "policy.update", "acme"),
]


@pytest.mark.parametrize("method,path,body,action,tenant", MUTATIONS, ids=[m[3] for m in MUTATIONS])
def test_every_mutating_call_writes_one_entry(world: Any, api: Any, method, path, body, action, tenant) -> None:
    from tests.conftest import make_user

    make_user("dave")
    path = path.format(token=ApiToken.objects.get(user=world.viewer.user).prefix)
    before = AuditEntry.objects.count()

    response = getattr(api(world.owner, "session"), method)(path, body, format="json")

    assert response.status_code in (200, 201, 204), response.content
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.tenant.slug, entry.actor_label, entry.actor_kind) == (action, tenant, "alice", "user")
    assert entry.remote_addr == "127.0.0.1"


def test_an_entry_names_the_token_that_acted(world: Any, api: Any) -> None:
    api(world.owner).patch(f"{T}/policy/", {"max_targets": 7}, format="json")
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry.actor_kind == "token"
    assert entry.actor_token.user == world.owner.user
    assert entry.before["max_targets"] is None and entry.after["max_targets"] == 7


FAILURES = [
    ("delete", f"{T}/members/alice/", None),  # the last owner
    ("patch", f"{T}/members/alice/", {"role": "viewer"}),  # demoting the last owner
    ("post", f"{T}/members/", {"username": "nobody", "role": "viewer"}),
    ("post", f"{T}/members/", {"username": "bob", "role": "viewer"}),  # already a member
    ("post", f"{T}/tokens/", {"name": "", "role": "viewer"}),
    ("patch", f"{T}/policy/", {"max_target_percent": 101}),
]


@pytest.mark.parametrize("method,path,body", FAILURES)
def test_a_failed_change_writes_no_entry_and_changes_nothing(world: Any, api: Any, method, path, body) -> None:
    before = (AuditEntry.objects.count(), list(Membership.objects.values_list("user__username", "role")))

    response = getattr(api(world.owner), method)(path, body, format="json")

    assert response.status_code == 400, response.content
    assert (AuditEntry.objects.count(), list(Membership.objects.values_list("user__username", "role"))) == before


def test_the_change_rolls_back_when_its_entry_cannot_be_written(world: Any, monkeypatch: Any) -> None:
    def broken_record(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("audit storage unavailable")

    monkeypatch.setattr(services.audit, "record", broken_record)
    membership = Membership.objects.get(user=world.viewer.user)
    with pytest.raises(DatabaseError):
        services.change_role(services.Actor(user=world.owner.user), membership, "operator")
    membership.refresh_from_db()
    assert membership.role == "viewer"


def test_the_database_refuses_to_update_or_delete_entries(world: Any) -> None:
    entry = AuditEntry.objects.filter(tenant=world.acme).order_by("seq").first()
    for statement in (
        "UPDATE tenants_auditentry SET action = 'forged' WHERE id = %s",
        "DELETE FROM tenants_auditentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [entry.pk])
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(PermissionError):
        entry.save()
    entry.refresh_from_db()
    assert entry.action == "tenant.create"


def tamper(sql: str, params: list[Any]) -> None:
    """What someone with direct database access would do: switch the guard off, edit, switch it back."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses while FK checks are pending
        cursor.execute("ALTER TABLE tenants_auditentry DISABLE TRIGGER tenants_auditentry_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE tenants_auditentry ENABLE TRIGGER tenants_auditentry_append_only")


@pytest.fixture
def history(world: Any, api: Any) -> list[AuditEntry]:
    for n in range(5):
        api(world.owner).patch(f"{T}/policy/", {"max_targets": n + 1}, format="json")
    return list(AuditEntry.objects.filter(tenant=world.acme).order_by("seq"))


def test_an_untouched_chain_verifies(history: list[AuditEntry], capsys: Any) -> None:
    call_command("verify_audit", "--tenant", "acme")
    assert f"acme: ok, {len(history)} entries, head {history[-1].entry_hash}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "sql,params_of",
    [
        ("UPDATE tenants_auditentry SET action = 'policy.read' WHERE id = %s", lambda e: [e.pk]),
        ("UPDATE tenants_auditentry SET after = '{\"max_targets\": 99}' WHERE id = %s", lambda e: [e.pk]),
        ("UPDATE tenants_auditentry SET actor_label = 'carol' WHERE id = %s", lambda e: [e.pk]),
        ("UPDATE tenants_auditentry SET created_at = created_at - interval '1 day' WHERE id = %s", lambda e: [e.pk]),
        ("DELETE FROM tenants_auditentry WHERE id = %s", lambda e: [e.pk]),
    ],
    ids=["action", "after", "actor", "time", "deleted"],
)
def test_tampering_with_any_entry_fails_verification_and_names_it(history, sql, params_of, capsys) -> None:
    target = history[2]
    tamper(sql, params_of(target))

    with pytest.raises(CommandError, match=f"acme at entry #{target.seq}"):
        call_command("verify_audit", "--tenant", "acme")
    assert f"BROKEN at entry #{target.seq}" in capsys.readouterr().out


def test_a_rehashed_forgery_still_breaks_the_next_link(history: list[AuditEntry]) -> None:
    # A forger who recomputes the edited entry's own hash still breaks the link from the entry after it.
    from tenants.audit import entry_digest

    target = history[1]
    target.actor_label = "carol"
    forged_hash = entry_digest(target)
    tamper(
        "UPDATE tenants_auditentry SET actor_label = 'carol', entry_hash = %s WHERE id = %s", [forged_hash, target.pk]
    )
    report = verify_chain(history[0].tenant)
    assert (report.ok, report.broken_seq) == (False, history[2].seq)
    assert "link" in report.reason


def test_entries_of_tenants_chain_separately(world: Any, api: Any) -> None:
    api(world.outsider).patch("/api/v1/tenants/globex/policy/", {"max_targets": 1}, format="json")
    assert verify_chain(world.acme).ok and verify_chain(world.globex).ok
    acme_seqs = list(AuditEntry.objects.filter(tenant=world.acme).order_by("seq").values_list("seq", flat=True))
    globex_seqs = list(AuditEntry.objects.filter(tenant=world.globex).order_by("seq").values_list("seq", flat=True))
    assert acme_seqs == list(range(1, len(acme_seqs) + 1))
    assert globex_seqs == list(range(1, len(globex_seqs) + 1))


def test_audit_filters_by_actor_action_and_time(history: list[AuditEntry], world: Any, api: Any) -> None:
    client = api(world.viewer)
    by_action = client.get(f"{T}/audit/", {"action": "policy.update"}).json()
    assert by_action["count"] == 5
    by_family = client.get(f"{T}/audit/", {"action": "policy."}).json()
    assert by_family["count"] == 5
    by_system = client.get(f"{T}/audit/", {"actor": "system"}).json()  # the fixture's setup
    assert [e["action"] for e in by_system["results"]] == ["token.create"] * 3 + ["tenant.create"]
    by_user = client.get(f"{T}/audit/", {"actor": "alice"}).json()
    assert by_user["count"] == 5 and {e["actor_label"] for e in by_user["results"]} == {history[-1].actor_label}
    third = history[2].created_at
    since = client.get(f"{T}/audit/", {"since": third.isoformat()}).json()
    assert [e["seq"] for e in since["results"]] == [h.seq for h in reversed(history[2:])]
    until = client.get(f"{T}/audit/", {"until": third.isoformat()}).json()
    assert [e["seq"] for e in until["results"]] == [h.seq for h in reversed(history[:2])]
    bad = client.get(f"{T}/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()


def test_audit_csv_export_holds_every_matching_entry(history: list[AuditEntry], world: Any, api: Any) -> None:
    response = api(world.viewer).get(f"{T}/audit/", {"format": "csv", "action": "policy.update"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    expected = [e for e in reversed(history) if e.action == "policy.update"]
    assert [int(r["seq"]) for r in rows] == [e.seq for e in expected]
    assert [r["entry_hash"] for r in rows] == [e.entry_hash for e in expected]
    assert all(r["tenant"] == "acme" and r["actor_label"].startswith("token:") for r in rows)
