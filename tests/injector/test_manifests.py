"""Manifest documents as a whole: many at once (all or nothing), the kinds beside the chaos kinds,
metadata, and errors that name the document and the field."""
from __future__ import annotations

import pytest

from injector import manifests
from injector.manifests import ManifestErrors

POD_KILL = """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: %s}
spec: {action: pod-kill, mode: one, selector: {namespaces: [a]}}
"""


def errors_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ManifestErrors) as caught:
        manifests.parse(text)
    return [(e.document, e.path, e.message) for e in caught.value.errors]


def test_many_documents_parse_in_order() -> None:
    text = "---".join(POD_KILL % n for n in ("a", "b", "c"))
    assert [d.meta.name for d in manifests.parse(text)] == ["a", "b", "c"]


def test_one_bad_document_fails_the_whole_manifest_and_is_named() -> None:
    text = POD_KILL % "a" + "---" + (POD_KILL % "b").replace("mode: one", "mode: several") + "---" + POD_KILL % "c"
    assert errors_of(text) == [(2, "spec.mode", "'several' is not one of: one, all, fixed, fixed-percent, "
                                                "random-max-percent")]


def test_every_error_of_every_document_is_reported() -> None:
    bad = POD_KILL.replace("pod-kill", "pod-explode")
    found = errors_of(bad % "x" + "---\n" + "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {}\n")
    assert [(d, p) for d, p, _ in found] == [(1, "spec.action"), (2, "metadata.name")]


def test_the_same_name_twice_in_one_manifest_is_refused() -> None:
    assert errors_of(POD_KILL % "a" + "---" + POD_KILL % "a") == [
        (2, "metadata.name", "'a' is already defined in this manifest")
    ]


@pytest.mark.parametrize(
    "text,path,message",
    [
        ("apiVersion: v1\nkind: Pod\n", "apiVersion", 'is not chaos-mesh.org/v1alpha1'),
        ("apiVersion: chaos-mesh.org/v1alpha1\nkind: FooChaos\n", "kind", '"FooChaos" is not a Chaos Mesh kind'),
        ("apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: Bad_Name}\nspec: {}\n",
         "metadata.name", "is not valid"),
        ("apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: a}\n", "spec", "is required"),
        (POD_KILL % "a" + "extra: 1\n", "extra", "unknown field"),
        ((POD_KILL % "a").replace("mode: one", "mode: one, colour: red"), "spec.colour", "unknown field"),
        ("- just\n- a list\n", "", "is not a manifest"),
        ("", "", "no documents"),
    ],
)
def test_document_level_errors(text: str, path: str, message: str) -> None:
    found = errors_of(text)
    assert any(p == path and message in m for _, p, m in found), found


def test_kubectl_output_imports_server_fields_and_status_ignored() -> None:
    text = (POD_KILL % "a").replace(
        "metadata: {name: a}",
        "metadata: {name: a, uid: 1234, resourceVersion: '99', creationTimestamp: '2024-01-01T00:00:00Z'}",
    ) + "status: {experiment: {phase: Running}}\n"
    (definition,) = manifests.parse(text)
    assert definition.meta.name == "a"
    assert "uid" not in manifests.dump([definition])


def test_schedules_check_their_cron_and_embedded_chaos() -> None:
    base = """
apiVersion: chaos-mesh.org/v1alpha1
kind: Schedule
metadata: {name: s}
spec:
  schedule: "%s"
  type: PodChaos
  podChaos: {action: pod-kill, mode: one, selector: {}}
"""
    for good in ("@hourly", "@every 30s", "*/15 * * * *", "0 30 * * * *", "0 10 * * MON-FRI"):
        assert manifests.parse(base % good)[0].schedule == good
    assert errors_of(base % "@every soon")[0][:2] == (1, "spec.schedule")
    assert errors_of(base % "every day")[0][:2] == (1, "spec.schedule")
    wrong = (base % "@hourly").replace("podChaos:", "networkChaos:")
    assert errors_of(wrong)[0][:2] == (1, "spec.networkChaos")
    missing = (base % "@hourly").replace("  podChaos: {action: pod-kill, mode: one, selector: {}}\n", "")
    assert errors_of(missing)[0][:2] == (1, "spec.podChaos")


WORKFLOW = """
apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
  entry: %s
  templates:
    - {name: main, templateType: Serial, children: [%s]}
    - {name: wait, templateType: Suspend, deadline: 10s}
"""


@pytest.mark.parametrize(
    "entry,children,path,message",
    [
        ("nowhere", "wait", "spec.entry", "'nowhere' names no template"),
        ("main", "ghost", "spec.templates[0].children", "'ghost' names no template"),
        ("main", "main", "spec.templates", "the templates loop: main -> main"),
    ],
)
def test_workflow_trees_are_checked(entry: str, children: str, path: str, message: str) -> None:
    assert (1, path, message) in errors_of(WORKFLOW % (entry, children))


def test_workflow_templates_are_checked() -> None:
    task = (WORKFLOW % ("main", "wait")).replace("templateType: Suspend, deadline: 10s", "templateType: Task")
    assert errors_of(task)[0][:2] == (1, "spec.templates[1].templateType")
    suspend = (WORKFLOW % ("main", "wait")).replace(", deadline: 10s", "")
    assert errors_of(suspend)[0][:2] == (1, "spec.templates[1].deadline")


def test_status_checks_need_what_their_mode_needs() -> None:
    text = """
apiVersion: chaos-mesh.org/v1alpha1
kind: StatusCheck
metadata: {name: c}
spec:
  mode: Continuous
  type: HTTP
  http: {url: "http://x/", criteria: {statusCode: "299-200"}}
"""
    assert errors_of(text)[0][:2] == (1, "spec.duration")
    ranged = text.replace("mode: Continuous", "mode: Synchronous")
    assert errors_of(ranged)[0][:2] == (1, "spec.http.criteria.statusCode")


def test_hosts_are_named_by_address_or_by_selector_not_both() -> None:
    text = """
apiVersion: chaos-mesh.org/v1alpha1
kind: PhysicalMachineChaos
metadata: {name: burn}
spec:
  action: stress-cpu
  mode: all
  address: ["http://172.16.112.130:31767"]
  stress-cpu: {load: 10, workers: 1}
"""
    (definition,) = manifests.parse(text)
    assert definition.selector is None
    assert manifests.parse(manifests.dump([definition])) == [definition]
    both = text.replace("  mode: all\n", "  mode: all\n  selector: {labelSelectors: {rack: a}}\n")
    assert errors_of(both)[0][:2] == (1, "spec.address")
