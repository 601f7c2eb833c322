"""The settings page of the portal: the tenant's blast-radius policy, changed by owners through the
service the API uses (with the API's rules), read by everyone else; as owner, operator, viewer and
outsider."""
from __future__ import annotations

import re
from typing import Any

import pytest

from tenants.models import AuditEntry, Policy
from tests.portal.test_portal import main, signed_in, text

SAVED = "Saved the policy."


def policy_form(**changes: Any) -> dict[str, Any]:
    """What the owner's form posts for the default policy (kube-system protected, no limits, no windows),
    with `changes` on top; windows as a list of dicts."""
    windows = changes.pop("windows", [])
    data: dict[str, Any] = {
        "protected_namespaces": "kube-system", "namespace_allowlist": "", "max_targets": "",
        "max_target_percent": "", "max_duration_seconds": "", "max_concurrent_runs": "",
        "windows-TOTAL_FORMS": str(len(windows) + 1), "windows-INITIAL_FORMS": str(changes.pop("initial", 0)),
        "windows-MIN_NUM_FORMS": "0", "windows-MAX_NUM_FORMS": "1000",
        f"windows-{len(windows)}-timezone": "UTC",  # the blank row the page always adds
    }
    for i, window in enumerate(windows):
        for key, value in window.items():
            data[f"windows-{i}-{key}"] = value
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


def snapshot(world: Any) -> dict[str, Any]:
    policy = Policy.objects.get(tenant=world.acme)
    return {f.name: getattr(policy, f.name) for f in Policy._meta.fields if f.name not in ("id", "updated_at")}


def test_an_owner_sees_the_policy_in_a_form(world: Any) -> None:
    response = signed_in(world.owner).get("/t/acme/settings/")
    assert response.status_code == 200
    body = main(response)
    assert 'name="protected_namespaces"' in body and 'value="kube-system"' in body
    assert 'name="max_target_percent"' in body and 'name="windows-0-start"' in body and 'type="time"' in body
    assert 'name="dry_run_by_default"' in body and "Save the policy" in body
    assert '<a href="/t/acme/settings/" aria-current="page">Policy</a>' in text(response)  # the sub-tab


def test_an_owner_changes_every_field(world: Any) -> None:
    client = signed_in(world.owner)
    data = policy_form(
        protected_namespaces="kube-system, payments", namespace_allowlist="shop web", require_opt_in_annotation="on",
        max_targets="3", max_target_percent="50", max_duration_seconds="600", max_concurrent_runs="2",
        dry_run_by_default="on",
        windows=[{"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}],
    )

    response = client.post("/t/acme/settings/", data, follow=True)

    assert response.redirect_chain[-1][0] == "/t/acme/settings/"
    assert SAVED in text(response)
    policy = Policy.objects.get(tenant=world.acme)
    assert policy.protected_namespaces == ["kube-system", "payments"]
    assert policy.namespace_allowlist == ["shop", "web"] and policy.require_opt_in_annotation
    assert (policy.max_targets, policy.max_target_percent, policy.max_duration_seconds) == (3, 50, 600)
    assert policy.max_concurrent_runs == 2 and policy.dry_run_by_default
    assert policy.allowed_windows == [
        {"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}
    ]
    entry = AuditEntry.objects.filter(tenant=world.acme, action="policy.update").get()
    assert entry.actor_label == "alice" and entry.after["max_targets"] == 3
    # the saved window is now a row of the form, with a blank row to add another
    body = main(response)
    assert 'name="windows-0-start" value="09:00"' in body and 'name="windows-1-start"' in body
    assert 'name="windows-0-DELETE"' in body


def test_clearing_a_limit_sets_no_limit(world: Any) -> None:
    Policy.objects.filter(tenant=world.acme).update(max_targets=5)
    signed_in(world.owner).post("/t/acme/settings/", policy_form(max_targets=""))
    assert Policy.objects.get(tenant=world.acme).max_targets is None


def test_an_owner_removes_a_window(world: Any) -> None:
    window = {"days": ["sat"], "start": "22:00", "end": "02:00", "timezone": "UTC"}
    Policy.objects.filter(tenant=world.acme).update(allowed_windows=[window])
    data = policy_form(windows=[{**window, "DELETE": "on"}], initial=1)
    assert signed_in(world.owner).post("/t/acme/settings/", data).status_code == 302
    assert Policy.objects.get(tenant=world.acme).allowed_windows == []


@pytest.mark.parametrize("field, value, message", [
    ("max_target_percent", "150", "Ensure this value is less than or equal to 100."),
    ("max_target_percent", "0", "Ensure this value is greater than or equal to 1."),
    ("max_targets", "many", "A valid integer is required."),
    ("protected_namespaces", "kube-system Bad_NS", "'Bad_NS' is not a valid namespace name (RFC 1123 label)"),
    ("namespace_allowlist", "shop shop", "namespaces must not repeat"),
])
def test_a_bad_value_shows_its_message_on_the_field_and_changes_nothing(
    world: Any, field: str, value: str, message: str
) -> None:
    before = snapshot(world)
    data = policy_form(max_concurrent_runs="7", dry_run_by_default="on", **{field: value})

    response = signed_in(world.owner).post("/t/acme/settings/", data)

    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    field_group = main(response).split(f'name="{field}"')[0].rsplit('class="field"', 1)[1]
    assert message.replace("'", "&#x27;") in field_group  # rendered next to its own field
    assert snapshot(world) == before  # the good values posted with it were not saved either
    assert not AuditEntry.objects.filter(action="policy.update").exists()


@pytest.mark.parametrize("window, field, message", [
    ({"days": ["mon"], "start": "25:00", "end": "10:00"}, "start", "use HH:MM (24 h)"),
    ({"days": ["mon"], "start": "10:00", "end": "10:00"}, "end", "a window must not be empty (start equals end)"),
    ({"days": [], "start": "09:00", "end": "10:00"}, "days", "This list may not be empty."),
    ({"days": ["mon"], "start": "09:00", "end": "10:00", "timezone": "Mars/Olympus"}, "timezone",
     "unknown time zone 'Mars/Olympus'"),
])
def test_a_bad_window_shows_its_message_in_its_row_and_changes_nothing(
    world: Any, window: dict[str, Any], field: str, message: str
) -> None:
    before = snapshot(world)
    response = signed_in(world.owner).post("/t/acme/settings/", policy_form(max_targets="4", windows=[window]))
    assert response.status_code == 400
    row = response.context["windows"].forms[0]
    assert row.errors[field] == [message]
    assert message.replace("'", "&#x27;") in main(response)
    assert snapshot(world) == before


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_others_read_the_policy_without_any_form_control(world: Any, member: str) -> None:
    Policy.objects.filter(tenant=world.acme).update(
        max_targets=3, allowed_windows=[{"days": ["mon", "fri"], "start": "09:00", "end": "17:00", "timezone": "UTC"}]
    )
    client = signed_in(getattr(world, member))

    response = client.get("/t/acme/settings/")

    assert response.status_code == 200
    body = main(response)
    assert not re.search(r"<(input|select|textarea|button|form)\b", body)
    assert "<code>kube-system</code>" in body and "Max targets per run</dt><dd>3</dd>" in body
    assert "mon, fri 09:00–17:00 UTC" in body and "Only owners can change it." in body
    assert "Max concurrent runs</dt><dd>no limit</dd>" in body

    before = snapshot(world)
    assert client.post("/t/acme/settings/", policy_form(max_targets="1")).status_code == 403
    assert snapshot(world) == before


def test_an_empty_policy_reads_as_no_limits(world: Any) -> None:
    Policy.objects.filter(tenant=world.acme).update(protected_namespaces=[])
    body = main(signed_in(world.viewer).get("/t/acme/settings/"))
    assert "none: runs may start at any time" in body
    assert "none: any namespace that is not protected" in body
    assert "Protected namespaces</dt>\n      <dd><span class=\"muted\">none</span>" in body


def test_an_outsider_gets_404(world: Any) -> None:
    client = signed_in(world.outsider)
    assert client.get("/t/acme/settings/").status_code == 404
    assert client.post("/t/acme/settings/", policy_form(max_targets="1")).status_code == 404
    assert Policy.objects.get(tenant=world.acme).max_targets is None


def test_the_settings_sub_tabs_lead_to_members_tokens_and_the_audit_log_with_its_csv(world: Any) -> None:
    page = text(signed_in(world.viewer).get("/t/acme/settings/"))
    for path in ("/t/acme/members/", "/t/acme/tokens/", "/t/acme/audit/"):
        assert f'href="{path}"' in page
    audit = main(signed_in(world.viewer).get("/t/acme/audit/"))
    assert "/api/v1/tenants/acme/audit/?format=csv" in audit and "Download CSV" in audit
