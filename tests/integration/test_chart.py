"""The Helm chart: lint, what each value renders, an install into the control plane, and
the operator running as the chart's ServiceAccount under the chart's RBAC."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsg_operator.local_cluster import LocalControlPlane, free_port
from tests.harness import ROOT
from tests.integration.conftest import Kubectl, Operator, wait_for
from tests.integration.test_operations import Replica
from tests.integration.workloads import (
    ADAPTERS,
    RBG_ADAPTER_CRD,
    RBG_CRD,
    RBGS,
    deployment,
    install_crd,
    replicas,
    role_replicas,
    rolebasedgroup,
    scaling_adapter,
)
from tests.specs import follow, group_spec, rsg, target

CHART = ROOT / "deploy" / "chart" / "rsg-operator"
PREFIX = "resourcescalinggroup.com/"
DRAINED = f"{PREFIX}drained"
KUBE_VERSION = "1.34.4"  # the local control plane's


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm, built from its Go module into the cache (hack/build-helm.sh)."""
    given = os.environ.get("RSG_HELM")
    if given:
        return Path(given)
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-helm.sh")], capture_output=True, text=True, check=True
    )
    return Path(built.stdout.strip().splitlines()[-1])


def run_helm(helm: Path, *args: str, kubeconfig: Path | None = None) -> str:
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    result = subprocess.run(
        [str(helm), *args, *config], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def render(helm: Path, tmp_path: Path, **values: Any) -> list[dict[str, Any]]:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    out = run_helm(
        helm,
        "template",
        "rel",
        str(CHART),
        "-n",
        "rsg-system",
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(file),
    )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, [(d["kind"], d["metadata"]["name"]) for d in found]
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0])


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every grant of a Role or ClusterRole."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_chart_lints(helm: Path) -> None:
    out = run_helm(helm, "lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_defaults_render_a_restricted_two_replica_operator_with_least_privilege(
    helm: Path, tmp_path: Path
) -> None:
    docs = render(helm, tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            *("ClusterRole", "ClusterRoleBinding") * 2,  # the operator's; the webhook's CA
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            *("Service",) * 2,  # metrics; webhook
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    deployment_ = one(docs, "Deployment")
    assert deployment_["spec"]["replicas"] == 2
    pod = deployment_["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    operator = container(docs)
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert operator["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert operator["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(operator["resources"]) == {"requests", "limits"}
    assert operator["args"] == [
        "--all-namespaces",
        "--resync-seconds=300",
        "--max-concurrent-reconciles=8",
        "--log-format=json",
        "--http-address=0.0.0.0:8080",
        "--webhook-address=0.0.0.0:9443",
        "--webhook-configuration=rel-rsg-operator-webhook",
        "--webhook-host=rel-rsg-operator-webhook.rsg-system.svc",
        "--webhook-replicas=2",
        "--leader-elect",
        "--leader-election-id=rsg-operator",
    ]
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    # One pod beside the replicas at most, each known by its pod's name: the caBundle
    # keeps replicas + 1 CAs (cabundle.py).
    assert deployment_["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        operator["env"]
    )
    assert one(docs, "Service", "rel-rsg-operator-metrics")["spec"]["ports"][0]["port"] == 8080
    hook = one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {
            "apiGroups": ["resourcescalinggroup.com"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["resourcescalinggroups"],
            "scope": "Namespaced",
        }
    ]
    assert hook["clientConfig"]["service"]["name"] == "rel-rsg-operator-webhook"
    assert granted(one(docs, "ClusterRole", "rel-rsg-operator-webhook")) == {
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", v)
        for v in ("get", "update")
    }
    assert one(docs, "ClusterRole", "rel-rsg-operator-webhook")["rules"][0]["resourceNames"] == [
        "rel-rsg-operator-webhook"
    ]

    rules = granted(one(docs, "ClusterRole", "rel-rsg-operator"))
    assert not any(
        resource == "secrets" or "*" in (g, resource, verb) for g, resource, verb in rules
    )
    assert ("resourcescalinggroup.com", "resourcescalinggroups/status", "patch") in rules
    assert ("resourcescalinggroup.com", "resourcescalinggroups/finalizers", "update") in rules
    assert ("resourcescalinggroup.com", "resourcescalinggroups", "delete") not in rules
    assert ("apps", "deployments", "create") in rules
    assert ("apps", "deployments/scale", "update") in rules
    assert ("", "services/scale", "update") not in rules  # no such subresource
    assert ("", "events", "create") in rules
    adapters = "rolebasedgroupscalingadapters"
    assert ("workloads.x-k8s.io", f"{adapters}/scale", "patch") in rules  # RBG's adapters
    assert ("workloads.x-k8s.io", adapters, "update") not in rules  # only their /scale
    assert ("coordination.k8s.io", "leases", "update") not in rules  # only in its namespace
    lease_role = one(docs, "Role")
    assert lease_role["metadata"]["namespace"] == "rsg-system"
    assert granted(lease_role) == {
        ("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")
    }

    # The policy: the operator's ServiceAccount, on every kind it may write.
    policy = one(docs, "ValidatingAdmissionPolicy", "rel-rsg-operator-writes")["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConditions"] == [
        {
            "name": "operator-service-account",
            "expression": "request.userInfo.username == "
            '"system:serviceaccount:rsg-system:rel-rsg-operator"',
        }
    ]
    assert {
        ("apps", "deployments", "CREATE"),
        ("apps", "deployments", "UPDATE"),
        ("apps", "deployments", "DELETE"),
        ("apps", "deployments/scale", "UPDATE"),
        ("apps", "statefulsets", "DELETE"),
        ("apps", "statefulsets/scale", "UPDATE"),
        ("", "services", "CREATE"),
        ("", "configmaps", "UPDATE"),
        ("workloads.x-k8s.io", "rolebasedgroups", "UPDATE"),
        ("workloads.x-k8s.io", "rolebasedgroups/scale", "UPDATE"),
        ("leaderworkerset.x-k8s.io", "leaderworkersets", "CREATE"),
        ("leaderworkerset.x-k8s.io", "leaderworkersets/scale", "UPDATE"),
        ("workloads.x-k8s.io", "rolebasedgroupscalingadapters/scale", "UPDATE"),
    } <= matched(policy)
    assert ("", "services/scale", "UPDATE") not in matched(policy)
    assert ("", "events", "CREATE") not in matched(policy)  # its Events are its own
    assert [v["reason"] for v in policy["validations"]] == ["Forbidden"] * 3
    binding = one(docs, "ValidatingAdmissionPolicyBinding", "rel-rsg-operator-writes")["spec"]
    assert binding == {"policyName": "rel-rsg-operator-writes", "validationActions": ["Deny"]}


def matched(policy: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, operation) for every request a policy's rules match."""
    return {
        (group, resource, operation)
        for rule in policy["matchConstraints"]["resourceRules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for operation in rule["operations"]
    }


def test_each_value_changes_what_it_must(helm: Path, tmp_path: Path) -> None:
    docs = render(
        helm,
        tmp_path,
        image={"repository": "registry.example/rsg", "tag": "9.9.9"},
        replicaCount=3,
        watchNamespaces=["team-a", "team-b"],
        allowCrossNamespace=True,
        cloneableKinds=[{"apiGroup": "apps", "resources": ["deployments"]}],
        extraScalableKinds=[{"apiGroup": "example.com", "resources": ["widgets"]}],
        resyncSeconds=60,
        maxConcurrentReconciles=3,
        logFormat="text",
        leaderElection={"enabled": False},
        http={"port": 9090},
        podDisruptionBudget={"enabled": False},
        metrics={"service": {"enabled": False}},
        webhook={"port": 8443, "failurePolicy": "Ignore", "certManager": {"enabled": True}},
    )
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    operator = container(docs)
    assert operator["image"] == "registry.example/rsg:9.9.9"
    assert operator["args"] == [
        "--namespace=team-a",
        "--namespace=team-b",
        "--allow-cross-namespace",
        "--resync-seconds=60",
        "--max-concurrent-reconciles=3",
        "--log-format=text",
        "--http-address=0.0.0.0:9090",
        "--webhook-address=0.0.0.0:8443",
        "--webhook-cert-dir=/etc/rsg-operator/webhook",
    ]
    assert [p["containerPort"] for p in operator["ports"]] == [9090, 8443]
    assert operator["volumeMounts"][1]["mountPath"] == "/etc/rsg-operator/webhook"
    kinds = [d["kind"] for d in docs]
    assert "PodDisruptionBudget" not in kinds and kinds.count("Service") == 1  # the webhook's
    certificate = one(docs, "Certificate", "rel-rsg-operator-webhook")
    assert certificate["spec"]["dnsNames"] == ["rel-rsg-operator-webhook.rsg-system.svc"]
    # The serving certificate comes from a CA of the chart's own, so that its renewals
    # keep the caBundle (the injector takes the CA from the Secret's ca.crt).
    issuers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Issuer"}
    assert issuers == {
        "rel-rsg-operator-webhook-selfsigned": {"selfSigned": {}},
        "rel-rsg-operator-webhook": {"ca": {"secretName": "rel-rsg-operator-webhook-ca"}},
    }
    assert certificate["spec"]["issuerRef"] == {
        "name": "rel-rsg-operator-webhook",
        "kind": "Issuer",
    }
    authority = one(docs, "Certificate", "rel-rsg-operator-webhook-ca")["spec"]
    assert authority["isCA"] is True
    assert authority["secretName"] == "rel-rsg-operator-webhook-ca"
    assert authority["issuerRef"]["name"] == "rel-rsg-operator-webhook-selfsigned"
    webhook_config = one(docs, "ValidatingWebhookConfiguration")
    assert webhook_config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "rsg-system/rel-rsg-operator-webhook"
    }
    hook = webhook_config["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a", "team-b"]
    # Watched namespaces: members and RSGs granted there only; cluster-wide, only CRDs.
    assert granted(one(docs, "ClusterRole", "rel-rsg-operator")) == {
        ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")
    }
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]  # no lease
    rules = granted(roles[0])
    assert ("apps", "deployments", "create") in rules
    assert not any(resource.startswith("statefulsets") for _, resource, _ in rules)
    assert ("example.com", "widgets", "watch") in rules
    assert ("example.com", "widgets", "create") not in rules  # scaled, never cloned
    assert ("example.com", "widgets/scale", "update") in rules
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # The policy follows the kinds: what RBAC grants, the policy limits.
    policy = one(docs, "ValidatingAdmissionPolicy")["spec"]
    assert {resource for _, resource, _ in matched(policy)} == {
        "deployments",
        "deployments/scale",
        "widgets",
        "widgets/scale",
    }


def test_the_admission_policy_is_on_by_default_and_can_be_turned_off(
    helm: Path, tmp_path: Path
) -> None:
    kinds = [d["kind"] for d in render(helm, tmp_path, admissionPolicy={"enabled": False})]
    assert "ValidatingAdmissionPolicy" not in kinds
    assert "ValidatingAdmissionPolicyBinding" not in kinds
    named = render(helm, tmp_path, serviceAccount={"name": "custom"})
    condition = one(named, "ValidatingAdmissionPolicy")["spec"]["matchConditions"][0]
    assert condition["expression"].endswith('"system:serviceaccount:rsg-system:custom"')


def test_one_replica_gets_no_pod_disruption_budget(helm: Path, tmp_path: Path) -> None:
    """minAvailable 1 with one replica would block every node drain."""
    kinds = [d["kind"] for d in render(helm, tmp_path, replicaCount=1)]
    assert "PodDisruptionBudget" not in kinds
    assert "--webhook-replicas=1" in container(render(helm, tmp_path, replicaCount=1))["args"]
    assert "PodDisruptionBudget" in [d["kind"] for d in render(helm, tmp_path, replicaCount=2)]


@pytest.fixture
def installed(
    helm: Path, control_plane: LocalControlPlane, kubectl: Kubectl, operator: Operator
) -> Iterator[tuple[str, int]]:
    """The chart installed into its own namespace (the CRD exists already), with a free
    port for the operator's endpoints; the session's operator stopped meanwhile."""
    # A namespace of each install's own: the last one's may still be terminating.
    release_ns, port = f"rsg-system-{uuid.uuid4().hex[:8]}", free_port()
    # The webhook's Service has no pods behind it here: Ignore, so RSG writes go on.
    values = [f"http.port={port}", f"webhook.port={free_port()}", "webhook.failurePolicy=Ignore"]
    run_helm(
        helm,
        "install",
        "rsg",
        str(CHART),
        "-n",
        release_ns,
        "--create-namespace",
        *(f"--set={v}" for v in values),
        kubeconfig=control_plane.kubeconfig,
    )
    operator.stop()
    try:
        yield release_ns, port
    finally:
        operator.start()
        run_helm(helm, "uninstall", "rsg", "-n", release_ns, kubeconfig=control_plane.kubeconfig)
        kubectl.run("delete", "namespace", release_ns, "--wait=false")


def service_account_kubeconfig(
    control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str, account: str
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a bound token from
    the TokenRequest API (what the kubelet mounts into the operator's pod)."""
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token.strip()}}]
    for context in config["contexts"]:
        context["context"]["user"] = account
    assert control_plane.work_dir is not None
    path = control_plane.work_dir / f"kubeconfig-{account}"
    path.write_text(yaml.safe_dump(config))
    return path


def test_installed_chart_runs_both_strategies_as_its_service_account_and_no_more(
    installed: tuple[str, int],
    control_plane: LocalControlPlane,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    release_ns, port = installed
    for kind, name in [
        ("serviceaccount", "rsg-rsg-operator"),
        ("deployment", "rsg-rsg-operator"),
        ("poddisruptionbudget", "rsg-rsg-operator"),
        ("service", "rsg-rsg-operator-metrics"),
        ("role", "rsg-rsg-operator-leader-election"),
    ]:
        assert kubectl.get(kind, name, release_ns) is not None, (kind, name)
    assert kubectl.get("clusterrole", "rsg-rsg-operator", "") is not None
    assert kubectl.get("validatingwebhookconfiguration", "rsg-rsg-operator-webhook", "")
    chart_deployment = kubectl.get("deployment", "rsg-rsg-operator", release_ns) or {}
    args = chart_deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    as_chart = service_account_kubeconfig(control_plane, kubectl, release_ns, "rsg-rsg-operator")

    assert control_plane.work_dir is not None
    process = Replica(as_chart, control_plane.work_dir / "logs" / "operator-chart.log", ())
    process.port = port
    process.start(*args, env={"POD_NAMESPACE": release_ns})
    try:
        process.wait_for(lambda: process.get("/readyz")[0] == 200, what="serving")
        process.wait_for(lambda: process.metric("rsg_leader") == 1, what="leading")
        # GroupReplication: a second group cloned.
        kubectl.apply(deployment("prefill", 1), namespace)
        kubectl.apply(deployment("decode", 1), namespace)
        kubectl.apply(rsg("units", group_spec(replicas=2)), namespace)
        # InplaceScaling: decode follows router at ratio 2.
        kubectl.apply(deployment("router", 3), namespace)
        kubectl.apply(deployment("follower", 0), namespace)
        kubectl.apply(rsg("pool", follow("router", "follower")), namespace)
        # A role held by RBG's scaling adapter: scaled through the adapter's /scale.
        install_crd(kubectl, RBG_CRD)
        install_crd(kubectl, RBG_ADAPTER_CRD)
        kubectl.apply(rolebasedgroup("rbg", {"decode": 1}, "v1alpha2", ("decode",)), namespace)
        kubectl.apply(scaling_adapter("rbg", "decode", 1), namespace)
        roles = target("rbg", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")
        roles["subResources"] = [{"roleName": "decode"}]
        spec = follow("router", "decode", ratio=1)
        spec["targetResources"] = [target("router"), roles]
        kubectl.apply(rsg("roles", spec), namespace)
        process.wait_for(
            lambda: (
                kubectl.get("deployment", "unit-02-decode", namespace)
                and replicas(kubectl, "deployment", "follower", namespace) == 6
                and (kubectl.get(ADAPTERS, "rbg-decode", namespace) or {})["spec"].get("replicas")
                == 3
            ),
            what="both strategies reconciled",
        )
        process.wait_degraded(kubectl, "units", namespace, "False")
        process.wait_degraded(kubectl, "pool", namespace, "False")
        # Its own webhook configuration: the one object the ServiceAccount may update.
        hook = kubectl.get("validatingwebhookconfiguration", "rsg-rsg-operator-webhook", "")
        assert (hook or {})["webhooks"][0]["clientConfig"].get("caBundle")
        # Nothing refused to it: no RBAC or policy 403. (An event it posts on an RSG of an
        # earlier test, in a namespace being deleted, is refused for that reason alone.)
        refusals = [
            line
            for line in process.log_text().splitlines()
            if ("Forbidden" in line or " 403" in line) and "being terminated" not in line
        ]
        assert refusals == []
    finally:
        process.stop()

    # What the chart does not grant is refused (403) to the same identity.
    refused = [
        ("get", "secrets", "-n", namespace),
        ("scale", "replicaset", "--all", "--replicas=0", "-n", namespace),
        ("create", "job", "x", "--image=x", "-n", namespace, "--dry-run=server"),
        ("delete", "namespace", namespace, "--dry-run=server"),
    ]
    for command in refused:
        result = subprocess.run(  # -v=6 logs each request with its answer's status
            [str(kubectl.binary), f"--kubeconfig={as_chart}", "-v=6", *command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and "403 Forbidden" in result.stderr, (command, result)


POLICY = "rsg-rsg-operator-writes"  # the release "rsg"'s policy and binding
REFUSED_BY_POLICY = (
    f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: rsg-operator"
)


def run_as(kubeconfig: Path, kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl.binary), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused_by_policy(kubeconfig: Path, kubectl: Kubectl, *args: str) -> str:
    """Run kubectl as `kubeconfig`'s identity; the policy must refuse it. Its message."""
    result = run_as(kubeconfig, kubectl, *args)
    assert result.returncode != 0, f"admitted: kubectl {' '.join(args)}"
    assert REFUSED_BY_POLICY in result.stderr, result.stderr
    return result.stderr


def audited(
    control_plane: LocalControlPlane, user: str, namespace: str
) -> list[tuple[str, str, str, int]]:
    """The writes the operator (its user agent) made as `user` in `namespace`, from the
    API server's audit log: (verb, resource, subresource, the answer's status code)."""
    writes = []
    for line in control_plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event["user"]["username"] == user
            and event.get("userAgent", "").startswith("rsg-operator/")
            and ref.get("namespace") == namespace
        ):
            code = (event.get("responseStatus") or {}).get("code", 0)
            writes.append((event["verb"], ref["resource"], ref.get("subresource", ""), code))
    return writes


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80}]},
    }


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_the_policy_admits_every_write_of_the_operator_and_refuses_any_other(
    installed: tuple[str, int],
    control_plane: LocalControlPlane,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The operator as the chart's ServiceAccount, under the chart's policy: clones of
    three kinds made, drained, removed and rolled out, the seed group scaled to 0 and
    back, Targets scaled through /scale and through a RoleBasedGroup role's replicas, an
    RSG released; not one of its writes refused. The same identity is refused, by the
    policy and saying why, whatever it writes beyond that."""
    release_ns, port = installed
    assert kubectl.get("validatingadmissionpolicy", POLICY, "") is not None
    assert kubectl.get("validatingadmissionpolicybinding", POLICY, "") is not None
    as_chart = service_account_kubeconfig(control_plane, kubectl, release_ns, "rsg-rsg-operator")
    chart_deployment = kubectl.get("deployment", "rsg-rsg-operator", release_ns) or {}
    args = chart_deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert control_plane.work_dir is not None
    process = Replica(as_chart, control_plane.work_dir / "logs" / "operator-policy.log", ())
    process.port = port
    process.start(*args, env={"POD_NAMESPACE": release_ns})
    units = ["prefill", "prefill-svc", "prefill-config"]

    def clones(group: str) -> list[str]:
        return [
            name
            for kind, name in [
                ("deployment", f"{group}-prefill"),
                ("service", f"{group}-prefill-svc"),
                ("configmap", f"{group}-prefill-config"),
            ]
            if kubectl.get(kind, name, namespace) is not None
        ]

    def image(name: str) -> str:
        found = kubectl.get("deployment", name, namespace) or {}
        return str(found["spec"]["template"]["spec"]["containers"][0]["image"])

    try:
        process.wait_for(lambda: process.get("/readyz")[0] == 200, what="serving")
        process.wait_for(lambda: process.metric("rsg_leader") == 1, what="leading")
        kubectl.apply(deployment("prefill", 1, runs=True), namespace)
        kubectl.apply(service("prefill-svc", "prefill"), namespace)
        kubectl.apply(configmap("prefill-config", {"model": "m1"}), namespace)
        targets = (
            target("prefill"),
            target("prefill-svc", "Service", "v1"),
            target("prefill-config", "ConfigMap", "v1"),
        )
        drained = {"drainTimeoutSeconds": 600}
        # Scale-out: two clone groups of a Deployment, a Service and a ConfigMap.
        kubectl.apply(rsg("units", group_spec(*targets, replicas=3, **drained)), namespace)
        process.wait_for(
            lambda: (
                clones("unit-02") == [f"unit-02-{u}" for u in units]
                and clones("unit-03") == [f"unit-03-{u}" for u in units]
            ),
            what="two clone groups",
        )
        # Scale-in with a drain: marks on the clones, the gateway's acknowledgement
        # (another identity), then the group's deletion.
        kubectl.apply(rsg("units", group_spec(*targets, replicas=2, **drained)), namespace)
        process.wait_for(
            lambda: (
                (kubectl.get("deployment", "unit-03-prefill", namespace) or {})["metadata"]
                .get("labels", {})
                .get("resourcescalinggroup.com/draining")
                == "true"
            ),
            what="unit-03 draining",
        )
        kubectl.run(
            "annotate", "configmap/unit-03-prefill-config", "-n", namespace, f"{DRAINED}=true"
        )
        process.wait_for(lambda: clones("unit-03") == [], what="unit-03 removed")
        # A template rollout: the seed's new image, PUT onto its clone.
        kubectl.run(
            "set", "image", "deployment/prefill", "prefill=registry.invalid/x:2", "-n", namespace
        )
        process.wait_for(
            lambda: image("unit-02-prefill") == "registry.invalid/x:2",
            timeout=90,
            what="unit-02 rolled out",
        )
        # Every group removed at once: the clones deleted, the seed scaled to 0 with its
        # count recorded; then the seed group back.
        kubectl.apply(rsg("units", group_spec(*targets, replicas=0)), namespace)
        process.wait_for(
            lambda: (
                clones("unit-02") == []
                and replicas(kubectl, "deployment", "prefill", namespace) == 0
            ),
            what="every group removed",
        )
        kubectl.apply(rsg("units", group_spec(*targets, replicas=1)), namespace)
        process.wait_for(
            lambda: replicas(kubectl, "deployment", "prefill", namespace) == 1,
            what="the seed group restored",
        )
        # InplaceScaling: a Deployment through /scale, a RoleBasedGroup role by a patch
        # of its spec.roles[].replicas (no scaling adapter).
        install_crd(kubectl, RBG_CRD)
        kubectl.apply(deployment("router", 3), namespace)
        kubectl.apply(deployment("follower", 0), namespace)
        kubectl.apply(rolebasedgroup("rbg", {"decode": 1, "prefill": 1}, "v1alpha2"), namespace)
        roles = target("rbg", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")
        roles["subResources"] = [{"roleName": "decode"}]
        spec = follow("router", "follower", ratio=2)
        spec["targetResources"].append(roles)
        spec["scalingStrategy"]["inplaceConfig"]["bindings"].append(
            {"name": "decode", "role": "Target", "ratio": 1}
        )
        kubectl.apply(rsg("pool", spec), namespace)
        process.wait_for(
            lambda: (
                replicas(kubectl, "deployment", "follower", namespace) == 6
                and role_replicas(kubectl, "rbg", namespace) == {"decode": 3, "prefill": 1}
            ),
            what="both Targets following",
        )
        # A seed member's template is not RSG's to change, nor the seed RSG's to delete.
        message = refused_by_policy(
            as_chart,
            kubectl,
            "set",
            "image",
            "deployment/prefill",
            "prefill=registry.invalid/other:1",
            "-n",
            namespace,
        )
        assert f"this write to Deployment {namespace}/prefill changes spec.template" in message
        assert image("prefill") == "registry.invalid/x:2"
        message = refused_by_policy(
            as_chart, kubectl, "delete", "deployment", "prefill", "-n", namespace
        )
        assert f"Deployment {namespace}/prefill has no such owner" in message
        # The RSG deleted: its labels taken off the seed members.
        kubectl.run("delete", "rsg", "units", "-n", namespace, "--timeout=60s")
        seed = kubectl.get("deployment", "prefill", namespace) or {}
        assert not [k for k in seed["metadata"].get("labels", {}) if k.startswith(PREFIX)]
    finally:
        process.stop()
    # The API server's audit: every kind of write the operator makes was made, and not
    # one refused (a JSON patch whose `test` failed, 422, or a conflict, 409, is retried).
    user = f"system:serviceaccount:{release_ns}:rsg-rsg-operator"
    made = {
        ("create", "deployments", ""),
        ("create", "services", ""),
        ("create", "configmaps", ""),
        ("delete", "deployments", ""),
        ("delete", "services", ""),
        ("delete", "configmaps", ""),
        ("patch", "deployments", ""),  # seed labels, drain marks, the seed at 0 and back
        ("patch", "services", ""),
        ("patch", "configmaps", ""),
        ("update", "deployments", ""),  # the rollout's PUT
        ("patch", "deployments", "scale"),
        ("patch", "rolebasedgroups", ""),  # a role's replicas
    }

    def all_made() -> list[tuple[str, str, str, int]] | None:
        found = audited(control_plane, user, namespace)
        return (
            found if made <= {(verb, resource, sub) for verb, resource, sub, _ in found} else None
        )

    writes = wait_for(all_made, what="the operator's writes audited")
    assert [w for w in writes if w[3] in (401, 403)] == []

    # Anything else the same identity writes is refused, by the policy, saying why.
    kubectl.apply(configmap(f"probe-{namespace}", {"k": "v"}), "kube-system")
    try:
        message = refused_by_policy(
            as_chart, kubectl, "delete", "configmap", f"probe-{namespace}", "-n", "kube-system"
        )
        assert f"ConfigMap kube-system/probe-{namespace} has no such owner" in message
        message = refused_by_policy(
            as_chart,
            kubectl,
            "patch",
            "configmap",
            f"probe-{namespace}",
            "-n",
            "kube-system",
            "--type=merge",
            "-p",
            '{"data": {"k": "changed"}}',
        )
        assert "changes data" in message
        message = refused_by_policy(
            as_chart,
            kubectl,
            "label",
            "configmap",
            f"probe-{namespace}",
            "-n",
            "kube-system",
            "team=other",
        )
        assert "changes label team" in message
    finally:
        kubectl.run("delete", "configmap", f"probe-{namespace}", "-n", "kube-system")
    message = refused_by_policy(
        as_chart, kubectl, "create", "service", "clusterip", "stray", "--tcp=80", "-n", namespace
    )
    assert f"Service {namespace}/stray has no such owner" in message
    # A forged clone: an RSG reference (naming no RSG) beside a real owner. The garbage
    # collector would drop only the dangling reference and keep the object.
    system = kubectl.get("namespace", "kube-system", "") or {}
    forged = configmap(f"forged-{namespace}", {"mapRoles": "- groups: [system:masters]"})
    forged["metadata"].update(
        namespace="kube-system",
        labels={f"{PREFIX}name": "x", f"{PREFIX}group-id": "x-02", f"{PREFIX}group-index": "2"},
        ownerReferences=[
            {"apiVersion": "resourcescalinggroup.com/v1", "kind": "ResourceScalingGroup",
             "name": "x", "uid": "00000000-0000-0000-0000-000000000001", "controller": True},
            {"apiVersion": "v1", "kind": "Namespace", "name": "kube-system",
             "uid": system["metadata"]["uid"]},
        ],
    )  # fmt: skip
    manifest = tmp_path / "forged.json"
    manifest.write_text(json.dumps(forged))
    message = refused_by_policy(as_chart, kubectl, "create", "-f", str(manifest))
    assert f"kube-system/forged-{namespace} has other owners than one" in message
    refused_by_policy(as_chart, kubectl, "delete", RBGS, "rbg", "-n", namespace)
    # What RSG manages on a member stays open to it: replicas, and its own labels.
    for allowed in [
        ("scale", "deployment/prefill", "--replicas=2"),
        ("patch", "deployment/prefill", "--type=merge", "-p", '{"spec": {"replicas": 1}}'),
        ("label", "deployment/prefill", f"{PREFIX}name=units"),
    ]:
        result = run_as(as_chart, kubectl, *allowed, "-n", namespace)
        assert result.returncode == 0, (allowed, result.stderr)
