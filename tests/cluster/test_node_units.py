"""The real node's pure parts: its configuration (the facts of these machines), the iptables
clean-up that leaves the host's own rules alone, the image config read from the Dockerfile
and the OCI archive layout. No root, no cluster."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from hack.cluster import nodeconfig as nc
from hack.cluster.hostsnapshot import cleanup_script
from hack.cluster.images import dockerfile_config
from hack.cluster.oci import ImageConfig, layer_from_dir, layer_from_files, write_archive

LAYOUT = nc.NodeLayout(
    workdir=Path("/w/node"),
    service_cidr="10.0.0.0/24",
    kubelet_port=1,
    kubelet_healthz_port=2,
    proxy_healthz_port=3,
    proxy_metrics_port=4,
    dns_health_port=5,
    sandbox_image="arcx.local/pause:k",
)


def test_the_network_never_forwards_or_masquerades() -> None:
    (bridge,) = nc.cni_network(LAYOUT)["plugins"]  # type: ignore[misc]
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == [{"dst": "10.0.0.0/24", "gw": nc.NODE_IP}]
    assert LAYOUT.cluster_dns == "10.0.0.10"
    assert nc.resolv_conf(LAYOUT).splitlines()[0] == "nameserver 10.0.0.10"


def test_kubelet_config_holds_the_facts_of_these_machines() -> None:
    cfg = nc.kubelet_config(LAYOUT, Path("/ca.crt"))
    assert cfg["cgroupDriver"] == "cgroupfs" and cfg["failCgroupV1"] is False
    assert cfg["failSwapOn"] is False and cfg["oomScoreAdj"] == 0
    assert cfg["resolvConf"] == "/w/node/resolv.conf"
    assert cfg["imageGCHighThresholdPercent"] == 100  # imported images are never collected
    toml = nc.containerd_config(LAYOUT, "/usr/lib/cni")
    assert "restrict_oom_score_adj = true" in toml
    assert 'sandbox_image = "arcx.local/pause:k"' in toml
    assert '"SystemdCgroup" = false' in toml or "SystemdCgroup = false" in toml
    assert all(str(LAYOUT.workdir) in line for line in toml.splitlines() if "/w" in line)


def test_cleanup_deletes_only_added_chains_and_the_rules_jumping_to_them() -> None:
    before = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:HOST-OWN - [0:0]
-A INPUT -j HOST-OWN
COMMIT
"""
    after = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:HOST-OWN - [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j HOST-OWN
-A INPUT -m comment --comment "kube" -j KUBE-FIREWALL
-A KUBE-FIREWALL -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -j KUBE-SERVICES
COMMIT
"""
    script = cleanup_script(before, after)
    assert '-D INPUT -m comment --comment "kube" -j KUBE-FIREWALL' in script
    assert "-X KUBE-FIREWALL" in script and "-X KUBE-SERVICES" in script
    assert "HOST-OWN" not in script
    assert "-D PREROUTING -j KUBE-SERVICES" in script
    assert cleanup_script(before, before) == ""


def test_image_config_comes_from_the_dockerfile_targets() -> None:
    job = dockerfile_config("job-cpu")
    assert job.user == "65532:65532" and job.workdir == "/home/arcx"
    assert job.env["PATH"].startswith("/opt/venv/bin:") and job.env["HOME"] == "/home/arcx"
    assert job.cmd == ["arcx", "--help"] and not job.entrypoint
    op = dockerfile_config("operator")
    assert op.entrypoint == ["arcx-operator"] and op.user == "65532:65532"


def test_oci_archive_is_a_valid_reproducible_layout(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "x").write_text("#!/bin/sh\n")
    (root / "tmp").mkdir()
    (root / "tmp" / "junk").write_text("scratch")
    layer = layer_from_dir(root, tmp_path / "l1.tar", exclude=["tmp"])
    again = layer_from_dir(root, tmp_path / "l1b.tar", exclude=["tmp"])
    assert layer.digest == again.digest
    with tarfile.open(layer.path) as t:
        assert t.getnames() == ["bin", "bin/x"]
    extra = layer_from_files({"pause": (b"\x7fELF", 0o755)}, tmp_path / "l2.tar")
    out = tmp_path / "image.tar"
    digest = write_archive("arcx.local/x:1", [layer, extra], ImageConfig(user="1"), out)
    with tarfile.open(out) as t:
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        (entry,) = index["manifests"]
        assert entry["digest"] == digest
        assert entry["annotations"]["io.containerd.image.name"] == "arcx.local/x:1"
        blob = t.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest
        manifest = json.loads(blob)
        assert [ly["digest"] for ly in manifest["layers"]] == [
            f"sha256:{layer.digest}",
            f"sha256:{extra.digest}",
        ]
        cfg = json.loads(t.extractfile("blobs/sha256/" + manifest["config"]["digest"][7:]).read())  # type: ignore[union-attr]
        assert cfg["rootfs"]["diff_ids"] == [f"sha256:{layer.digest}", f"sha256:{extra.digest}"]
        assert cfg["config"]["User"] == "1"
