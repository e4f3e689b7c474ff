"""The validating webhook, called by the real API server over TLS on loopback."""

from __future__ import annotations

import base64
import copy
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from rsg_operator import cabundle, certs
from rsg_operator.local_cluster import LocalControlPlane, free_port
from tests.integration.conftest import Kubectl, Operator
from tests.integration.test_operations import Replica
from tests.integration.workloads import deployment
from tests.mounted import MountedSecret
from tests.specs import follow, group_spec, rsg, target


def configuration(name: str, port: int, namespace: str) -> dict[str, Any]:
    """RSG CREATE/UPDATE in `namespace` only (other tests' RSGs never reach it)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "rsg.resourcescalinggroup.com",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/validate-rsg"},
                "rules": [
                    {
                        "apiGroups": ["resourcescalinggroup.com"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["resourcescalinggroups"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


@pytest.fixture
def webhook(
    operator: Operator, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> Iterator[Replica]:
    """The operator alone, serving the webhook that the API server calls for RSGs in the
    test's namespace; its CA put into the configuration's caBundle by the operator."""
    port, name = free_port(), f"rsg-{namespace}"
    kubectl.apply(configuration(name, port, namespace), "default")
    operator.stop()
    assert control_plane.work_dir is not None
    served = Replica(control_plane.kubeconfig, control_plane.work_dir / "logs" / "webhook.log")
    served.port = free_port()
    served.start(
        f"--http-address=127.0.0.1:{served.port}",
        f"--webhook-address=127.0.0.1:{port}",
        f"--webhook-configuration={name}",
    )
    try:
        served.wait_for(
            lambda: (kubectl.get("validatingwebhookconfiguration", name, "") or {})["webhooks"][0][
                "clientConfig"
            ].get("caBundle"),
            what="the caBundle set",
        )
        yield served
    finally:
        served.stop()
        operator.start()
        kubectl.run("delete", "validatingwebhookconfiguration", name)


def refused(kubectl: Kubectl, manifest: dict[str, Any], namespace: str) -> str:
    result = kubectl.apply(manifest, namespace, check=False)
    assert result.returncode != 0, f"admitted: {manifest['metadata']['name']}"
    assert 'admission webhook "rsg.resourcescalinggroup.com" denied the request' in result.stderr
    return result.stderr


def stored(webhook: Replica, kubectl: Kubectl, name: str, namespace: str) -> None:
    """Until the operator has seen the RSG (the webhook checks against what it has seen)."""
    webhook.wait_for(
        lambda: (
            (kubectl.get("rsg", name, namespace) or {}).get("status", {}).get("observedGeneration")
        ),
        what=f"{name} reconciled",
    )


def test_each_invalid_ratio_is_refused_naming_its_field(
    webhook: Replica, kubectl: Kubectl, namespace: str
) -> None:
    # A string or a number: the schema cannot type the field, so CEL cannot see it.
    for ratio, why in [
        ("-1", "ratio '-1' is not a non-negative decimal"),
        ("abc", "ratio 'abc' is not a non-negative decimal"),
        ("NaN", "ratio 'NaN' is not a non-negative decimal"),
        (-2, "ratio -2 is negative; it must be >= 0"),
    ]:
        spec = follow("router", "decode")
        spec["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"] = ratio
        message = refused(kubectl, rsg("pool", spec), namespace)
        assert f"spec.scalingStrategy.inplaceConfig.bindings[1].ratio: {why}" in message
    on_source = follow("router", "decode")
    on_source["scalingStrategy"]["inplaceConfig"]["bindings"][0]["ratio"] = 1
    message = refused(kubectl, rsg("pool", on_source), namespace)
    assert (
        "spec.scalingStrategy.inplaceConfig.bindings: ratio is not allowed on the Source" in message
    )
    assert kubectl.get("rsg", "pool", namespace) is None


def test_cross_rsg_conflicts_are_refused_naming_the_field_and_the_other_rsg(
    webhook: Replica, kubectl: Kubectl, namespace: str
) -> None:
    for name in ("a", "b", "c", "router", "decode", "gateway", "prefill"):
        kubectl.apply(deployment(name, 1), namespace)
    kubectl.apply(rsg("pool-a", follow("router", "decode")), namespace)
    stored(webhook, kubectl, "pool-a", namespace)
    message = refused(kubectl, rsg("pool-b", follow("gateway", "decode")), namespace)
    assert (
        f"spec.scalingStrategy.inplaceConfig.bindings[1]: Deployment {namespace}/decode is "
        f"already a Target of RSG {namespace}/pool-a" in message
    )

    kubectl.apply(rsg("ab", follow("a", "b")), namespace)
    stored(webhook, kubectl, "ab", namespace)
    message = refused(kubectl, rsg("ba", follow("b", "a")), namespace)
    assert "bindings[1]: Source->Target bindings form a cycle" in message
    kubectl.apply(rsg("bc", follow("b", "c")), namespace)
    stored(webhook, kubectl, "bc", namespace)
    message = refused(kubectl, rsg("ca", follow("c", "a")), namespace)
    assert "bindings[1]: Source->Target bindings form a cycle" in message

    kubectl.apply(rsg("units", group_spec(target("prefill"))), namespace)
    stored(webhook, kubectl, "units", namespace)
    message = refused(kubectl, rsg("more", group_spec(target("prefill"), prefix="m")), namespace)
    assert f"spec.targetResources[0]: Deployment {namespace}/prefill is already the seed" in message


def test_refused_transitions_and_an_admitted_update(
    webhook: Replica, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    live = rsg("units", group_spec(target("prefill")))
    kubectl.apply(live, namespace)
    renamed = copy.deepcopy(live)
    renamed["spec"]["scalingStrategy"]["groupConfig"]["groupNamePrefix"] = "other"
    message = refused_or_invalid(kubectl, renamed, namespace)
    assert "groupNamePrefix" in message
    retyped = rsg("units", follow("router", "decode"))
    message = refused_or_invalid(kubectl, retyped, namespace)
    assert "type" in message

    scaled = copy.deepcopy(live)
    scaled["spec"]["scalingStrategy"]["groupConfig"]["replicas"] = 2
    assert kubectl.apply(scaled, namespace).returncode == 0  # a valid update is admitted


def refused_or_invalid(kubectl: Kubectl, manifest: dict[str, Any], namespace: str) -> str:
    """The CRD's CEL transition rules run before admission webhooks; either refuses with
    the field named."""
    result = kubectl.apply(manifest, namespace, check=False)
    assert result.returncode != 0, "admitted"
    return result.stderr


def test_with_the_webhook_down_rsg_writes_fail_and_other_kinds_do_not(
    webhook: Replica, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("router", 1), namespace)
    webhook.stop()
    result = kubectl.apply(rsg("pool", follow("router", "decode")), namespace, check=False)
    assert result.returncode != 0
    assert 'failed calling webhook "rsg.resourcescalinggroup.com"' in result.stderr
    assert kubectl.apply(deployment("decode", 0), namespace).returncode == 0
    kubectl.run("scale", "deployment/router", "--replicas=2", "-n", namespace)


def served_serial(port: int) -> int:
    """The serial number of the certificate a new TLS handshake with the webhook gets."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def serial(issued: certs.Issued) -> int:
    return x509.load_pem_x509_certificate(issued.cert_pem).serial_number


def trust(kubectl: Kubectl, name: str, authority: certs.Authority) -> None:
    """Set the configuration's caBundle to `authority` (what cert-manager's CA injector
    does after a renewal)."""
    bundle = base64.b64encode(authority.cert_pem).decode()
    kubectl.run(
        "patch",
        "validatingwebhookconfiguration",
        name,
        "--type=json",
        "-p",
        f'[{{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "{bundle}"}}]',
    )


def admits_and_refuses(served: Replica, kubectl: Kubectl, namespace: str, name: str) -> None:
    """RSG applies go through the webhook: an invalid one is refused by it (so the API
    server reached it over TLS), a valid one admitted."""
    invalid = follow("router", "decode")
    invalid["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"] = "-1"

    def refused_by_webhook() -> bool:
        result = kubectl.apply(rsg(f"{name}-bad", invalid), namespace, check=False)
        return 'admission webhook "rsg.resourcescalinggroup.com" denied' in result.stderr

    served.wait_for(refused_by_webhook, what="the webhook reached over TLS")
    kubectl.apply(rsg(name, follow("router", f"{name}-decode")), namespace)


def test_a_renewed_certificate_is_served_without_a_restart(
    operator: Operator,
    control_plane: LocalControlPlane,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> None:
    """cert-manager mode: the serving certificate is a mounted Secret's files, which the
    kubelet swaps when cert-manager renews it. Was: loaded once, so a renewal (and with
    the self-signed Issuer, the new caBundle injected) refused every RSG write."""
    authority = certs.Authority("renewals-ca")
    port, name = free_port(), f"rsg-{namespace}"
    hook = configuration(name, port, namespace)
    kubectl.apply(hook, "default")
    trust(kubectl, name, authority)
    mounted = MountedSecret(tmp_path / "webhook")
    first = authority.issue("localhost", ["localhost"], ["127.0.0.1"])
    mounted.update({"tls.crt": first.cert_pem, "tls.key": first.key_pem})
    kubectl.apply(deployment("router", 1), namespace)
    operator.stop()
    assert control_plane.work_dir is not None
    served = Replica(control_plane.kubeconfig, control_plane.work_dir / "logs" / "renewals.log")
    served.port = free_port()
    served.start(
        f"--http-address=127.0.0.1:{served.port}",
        f"--webhook-address=127.0.0.1:{port}",
        f"--webhook-cert-dir={mounted.directory}",
    )
    try:
        served.wait_for(lambda: served.get("/readyz")[0] == 200, what="serving")
        assert served_serial(port) == serial(first)
        admits_and_refuses(served, kubectl, namespace, "first")

        # Renewed by the same CA (a CA Issuer): the next handshake gets the new one.
        second = authority.issue("localhost", ["localhost"], ["127.0.0.1"])
        mounted.update({"tls.crt": second.cert_pem, "tls.key": second.key_pem})
        assert served_serial(port) == serial(second)
        admits_and_refuses(served, kubectl, namespace, "second")

        # Renewed by a new CA (the chart's self-signed Issuer), injected into the
        # caBundle: the API server's new connections trust only the new certificate.
        renewed = certs.Authority("renewals-ca-2")
        third = renewed.issue("localhost", ["localhost"], ["127.0.0.1"])
        mounted.update({"tls.crt": third.cert_pem, "tls.key": third.key_pem})
        trust(kubectl, name, renewed)
        assert served_serial(port) == serial(third)
        admits_and_refuses(served, kubectl, namespace, "third")
        assert "serving the webhook with the renewed certificate" in served.log_text()
        assert served.process is not None and served.process.poll() is None  # no restart
    finally:
        served.stop()
        operator.start()
        kubectl.run("delete", "validatingwebhookconfiguration", name)


def test_replicas_keep_the_ca_bundle_to_one_ca_each_plus_one(
    operator: Operator, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """Was: each start appended a CA (valid a year) and only expired ones were dropped,
    so a crash-looping pod grew the configuration toward etcd's object size limit."""
    name = f"rsg-{namespace}"
    kubectl.apply(configuration(name, free_port(), namespace), "default")
    operator.stop()
    assert control_plane.work_dir is not None
    log = control_plane.work_dir / "logs" / "ca-bundle.log"

    def bundle() -> list[x509.Certificate]:
        found = kubectl.get("validatingwebhookconfiguration", name, "") or {}
        pem = base64.b64decode(found["webhooks"][0]["clientConfig"].get("caBundle") or "")
        return x509.load_pem_x509_certificates(pem) if pem.strip() else []

    def records() -> dict[str, cabundle.Record]:
        found = kubectl.get("validatingwebhookconfiguration", name, "") or {}
        annotations = found["metadata"].get("annotations") or {}
        return cabundle.parse_records(annotations.get(cabundle.ANNOTATION))

    def run(replica: Replica, pod: str) -> None:
        """A replica serving on ports of its own (the API server calls none of them)."""
        replica.port = free_port()
        replica.start(
            f"--http-address=127.0.0.1:{replica.port}",
            f"--webhook-address=127.0.0.1:{free_port()}",
            f"--webhook-configuration={name}",
            "--webhook-replicas=2",
            env={"POD_NAME": pod},
        )

    live, restarted = Replica(control_plane.kubeconfig, log), Replica(control_plane.kubeconfig, log)
    try:
        run(live, "pod-a")
        live.wait_for(lambda: len(bundle()) == 1, what="pod-a's CA trusted")
        # pod-b's container crashes again and again: each start replaces its own CA.
        previous = None
        for start in range(4):
            run(restarted, "pod-b")
            restarted.wait_for(
                lambda was=previous: "pod-b" in records() and records()["pod-b"].fingerprint != was,
                what=f"pod-b's CA of start {start} trusted",
            )
            previous = records()["pod-b"].fingerprint
            assert len(bundle()) == 2
            assert {r.fingerprint for r in records().values()} == {
                cabundle.fingerprint(cert) for cert in bundle()
            }
            restarted.kill()  # a crash: no cleanup
        assert set(records()) == {"pod-a", "pod-b"}
        # A replica stopped cleanly (a rolling update's) takes its CA out once it no
        # longer serves: the next pod cannot drop a live one's in its favour.
        run(restarted, "pod-b")
        restarted.wait_for(lambda: records()["pod-b"].fingerprint != previous, what="pod-b")
        restarted.stop()
        assert set(records()) == {"pod-a"}
        assert [cabundle.fingerprint(cert) for cert in bundle()] == [records()["pod-a"].fingerprint]
        assert "this replica's CA (pod-b) left the caBundle" in log.read_text()
    finally:
        live.stop()
        restarted.stop()
        operator.start()
        kubectl.run("delete", "validatingwebhookconfiguration", name)
