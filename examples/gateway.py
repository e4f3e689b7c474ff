"""A gateway's side of an RSG's two-phase scale-down (docs/gateway.md), with the
Kubernetes Python client (`pip install kubernetes`).

    python examples/gateway.py pd-cluster -n ai              # follow the RSG, act on changes
    python examples/gateway.py pd-cluster -n ai --once       # one pass, then exit
    python examples/gateway.py pd-cluster -n ai --remove inference-unit-03

Each pass reads status.groups[] and
- routes new requests only to the pods of groups in phase Ready (a group's pods are the
  pods its members' podSelector matches; Creating groups are not ready yet);
- stops routing to groups in phase Draining, and once a draining group has no request
  in flight, acknowledges it: it annotates one member resourcescalinggroup.com/drained=true,
  and the operator removes the group at once instead of waiting for drainDeadline.

`--remove ID` asks for one particular group to go: it names the group first among
scaleDown.candidates and lowers replicas by one, in one patch.

The in-flight count is the gateway's own knowledge; here `in_flight` is a stand-in that
says 0. Replace it (and `route`) with your gateway's.
"""

from __future__ import annotations

import argparse
from typing import Any

from kubernetes import client, config, dynamic, watch

GROUP, VERSION, PLURAL = "resourcescalinggroup.com", "v1", "resourcescalinggroups"
DRAINED = "resourcescalinggroup.com/drained"


def in_flight(group_id: str) -> int:
    """Requests the gateway still has in flight on a group's pods (stand-in)."""
    return 0


def route(table: dict[str, list[str]]) -> None:
    """Hand the routing table (group id -> ready pod IPs) to the data plane (stand-in)."""
    for group_id, ips in sorted(table.items()):
        print(f"route {group_id}: {' '.join(sorted(ips)) or '(no ready pod yet)'}")


def ready_pod_ips(core: client.CoreV1Api, namespace: str, selector: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return sorted(
        pod.status.pod_ip
        for pod in pods
        if pod.status.pod_ip
        and pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


def acknowledge(api: client.ApiClient, namespace: str, group: dict[str, Any]) -> bool:
    """Annotate one of the group's members drained=true (any member will do: a
    Deployment, a RoleBasedGroup...; its kind and apiVersion are in the status)."""
    patch = {"metadata": {"annotations": {DRAINED: "true"}}}
    kinds = dynamic.DynamicClient(api).resources
    for member in group.get("members", []):
        resource = kinds.get(api_version=member["apiVersion"], kind=member["kind"])
        resource.patch(
            name=member["name"],
            namespace=namespace,
            body=patch,
            content_type="application/merge-patch+json",
        )
        return True
    return False


def one_pass(api: client.ApiClient, namespace: str, rsg: dict[str, Any]) -> None:
    core = client.CoreV1Api(api)
    table: dict[str, list[str]] = {}
    for group in (rsg.get("status") or {}).get("groups") or []:
        if group["phase"] == "Ready":
            table[group["id"]] = [
                ip
                for member in group["members"]
                if member.get("podSelector")
                for ip in ready_pod_ips(core, namespace, member["podSelector"])
            ]
        elif group["phase"] == "Draining":
            print(
                f"stop routing to {group['id']} (removed at {group['drainDeadline']} at the latest)"
            )
            if in_flight(group["id"]) == 0 and acknowledge(api, namespace, group):
                print(f"acknowledged {group['id']}: drained")
    route(table)


def remove(api: client.ApiClient, namespace: str, name: str, group_id: str) -> None:
    objects = client.CustomObjectsApi(api)
    rsg = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    config_ = rsg["spec"]["scalingStrategy"]["groupConfig"]
    listed = (config_.get("scaleDown") or {}).get("candidates") or []
    patch = {
        "metadata": {"resourceVersion": rsg["metadata"]["resourceVersion"]},  # no lost update
        "spec": {
            "scalingStrategy": {
                "groupConfig": {
                    "replicas": max(int(config_.get("replicas", 1)) - 1, 0),
                    "scaleDown": {"candidates": [group_id, *(c for c in listed if c != group_id)]},
                }
            }
        },
    }
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
    print(f"asked for {group_id} to be removed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rsg", help="name of the ResourceScalingGroup")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--remove", metavar="ID", help="ask for this group to be removed")
    args = parser.parse_args()
    try:
        config.load_kube_config(config_file=args.kubeconfig)
    except config.ConfigException:
        config.load_incluster_config()
    api = client.ApiClient()
    objects = client.CustomObjectsApi(api)
    if args.remove:
        remove(api, args.namespace, args.rsg, args.remove)
        return
    if args.once:
        rsg = objects.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.rsg)
        one_pass(api, args.namespace, rsg)
        return
    selector = f"metadata.name={args.rsg}"
    while True:  # a watch ends now and then: start it again
        for event in watch.Watch().stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            args.namespace,
            PLURAL,
            field_selector=selector,
            timeout_seconds=300,
        ):
            if event["type"] in ("ADDED", "MODIFIED"):
                one_pass(api, args.namespace, event["object"])


if __name__ == "__main__":
    main()
