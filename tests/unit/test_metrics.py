"""metrics: writes are counted by the resource their path names."""

from __future__ import annotations

import pytest

from rsg_operator.metrics import resource_of


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/apps/v1/namespaces/ai/deployments/web", "deployments"),
        ("/apis/apps/v1/namespaces/ai/deployments/web/scale", "deployments/scale"),
        ("/apis/apps/v1/namespaces/ai/deployments", "deployments"),
        ("/api/v1/namespaces/ai/events", "events"),
        ("/api/v1/namespaces/ai", "namespaces"),
        (
            "/apis/resourcescalinggroup.com/v1/namespaces/ai/resourcescalinggroups/p/status",
            "resourcescalinggroups/status",
        ),
        ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x", "customresourcedefinitions"),
    ],
)
def test_a_write_is_counted_by_the_resource_its_path_names(path: str, resource: str) -> None:
    assert resource_of(path) == resource
