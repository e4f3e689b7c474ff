"""The command line: clear refusals when there is nothing to run against."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsg_operator import cli
from rsg_operator.local_cluster import ControlPlaneError, LocalControlPlane


def test_run_without_cluster_or_binaries_explains_both_ways_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("RSG_CONTROL_PLANE_BIN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        cli.main(["run"])
    assert "no cluster is configured" in str(stop.value)
    assert "--control-plane-bin" in str(stop.value)


def test_explicit_kubeconfig_counts_as_a_configured_cluster(tmp_path: Path) -> None:
    assert cli.cluster_configured(tmp_path / "kubeconfig")


def test_missing_control_plane_binaries_are_named(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("")
    with pytest.raises(ControlPlaneError, match="kube-apiserver, kube-controller-manager"):
        LocalControlPlane(bin_dir=tmp_path)
