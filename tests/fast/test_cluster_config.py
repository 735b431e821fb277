"""`make cluster`'s configuration as its programs will read it: each Asterisk node rendered by the
same renderer scripts/sandbox runs (`--node`), with its own ports and folders and the settings its
`hotline serve` gets; Kamailio's dispatcher list and configuration from the same values (checked by
Kamailio itself when it is installed). The running cluster is tested in tests/cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agi_app.config import Settings, read_env_file
from agi_app.monitoring.publisher import this_server
from tests.support.asterisk_config import render

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text(encoding="utf-8"))
NODES = VALUES["cluster"]["nodes"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each node rendered into a folder of its own, its server settings in <folder>.env."""
    base = tmp_path_factory.mktemp("cluster")
    for name in NODES:
        done = render(base / name, "--node", name, "--write-env", str(base / f"{name}.env"))
        assert done.returncode == 0, done.stderr
    return {name: base / name for name in NODES}


def test_each_node_listens_on_its_own_ports_and_media_range(nodes: dict[str, Path]) -> None:
    seen: set[str] = set()
    for name, folder in nodes.items():
        node = NODES[name]
        pjsip, http = (folder / "pjsip.conf").read_text(), (folder / "http.conf").read_text()
        manager, rtp = (folder / "manager.conf").read_text(), (folder / "rtp.conf").read_text()
        assert f"bind = 127.0.0.1:{node['sip']['port']}" in pjsip
        assert f"bindport = {node['ari']['port']}" in http and f"port = {node['ami']['port']}" in manager
        assert f"rtpstart = {node['rtp']['start']}" in rtp and f"rtpend = {node['rtp']['end']}" in rtp
        assert "match = 127.0.0.1" in pjsip, "calls from Kamailio (this host) are callers, by address"
        ports = {str(node["sip"]["port"]), str(node["ari"]["port"]), str(node["ami"]["port"])}
        assert not ports & seen, "no two nodes share a port"
        seen |= ports
    first, second = (NODES[n]["rtp"] for n in nodes)
    assert first["end"] < second["start"] or second["end"] < first["start"], "media ranges apart"


def test_each_node_has_folders_and_channel_ids_of_its_own_and_the_single_sandbox_keeps_the_built_in_ones(
        nodes: dict[str, Path], tmp_path: Path) -> None:
    for name, folder in nodes.items():
        conf = (folder / "asterisk.conf").read_text()
        assert "[directories]\n" in conf, "a node's folders are read (not a template section)"
        dirs = dict(line.split(" => ", 1) for line in conf.splitlines() if " => " in line)
        for key in ("astetcdir", "astrundir", "astspooldir", "astlogdir", "astdbdir", "astcachedir"):
            assert dirs[key].endswith(f"/asterisk-{name}"), (key, dirs[key])
        assert dirs["astdatadir"] == "/usr/share/asterisk", "sounds and programs are shared"
        assert f"\nsystemname = {name}\n" in conf, "channel ids are unique across the nodes (journeys' keys)"
    assert render(tmp_path / "single").returncode == 0
    single = (tmp_path / "single" / "asterisk.conf").read_text()
    assert "[directories](!)" in single and "-node" not in single and "systemname" not in single


def test_a_nodes_server_reaches_its_own_asterisk_and_has_a_server_id(nodes: dict[str, Path]) -> None:
    for name, folder in nodes.items():
        node = NODES[name]
        env = read_env_file(folder.with_suffix(".env"))
        settings = Settings.load({**env, "HOTLINE_ENV_FILE": str(folder.with_suffix(".env"))})
        assert settings.ari_url == f"http://127.0.0.1:{node['ari']['port']}"
        assert settings.ami_url == f"tcp://127.0.0.1:{node['ami']['port']}"
        assert settings.agi_listen == node["env"]["HOTLINE_AGI_LISTEN"]
        assert settings.metrics_listen == node["env"]["HOTLINE_METRICS_LISTEN"]
        assert this_server(settings.server_id) == name
        agi_port = node["env"]["HOTLINE_AGI_LISTEN"].rsplit(":", 1)[1]
        assert f"HOTLINE_AGI_PORT={agi_port}" in (folder / "extensions.conf").read_text(), \
            "the node's dialplan asks its own server's FastAGI hooks"
        assert not any("PASSWORD" in key for key in env), "credentials stay in the one sandbox env file"
    assert this_server("") != this_server("node1") and ":" in this_server("")


def test_an_unknown_node_is_refused(tmp_path: Path) -> None:
    done = render(tmp_path / "x", "--node", "node9")
    assert done.returncode == 1 and "no cluster node 'node9'" in done.stderr


def test_kamailio_dispatches_over_every_node_and_accepts_its_configuration(tmp_path: Path) -> None:
    done = render(tmp_path, "--templates", str(REPO / "config" / "kamailio"))
    assert done.returncode == 0, done.stderr
    targets = [line.split() for line in (tmp_path / "dispatcher.list").read_text().splitlines()
               if line and not line.startswith("#")]
    assert targets == [["1", f"sip:127.0.0.1:{node['sip']['port']}", "0", "0", f"duid={name}"]
                       for name, node in NODES.items()]
    cfg = (tmp_path / "kamailio.cfg").read_text()
    assert f"listen=udp:127.0.0.1:{VALUES['sip']['port']}" in cfg
    assert f'modparam("dispatcher", "ds_ping_interval", {VALUES["cluster"]["probe_interval_s"]})' in cfg
    if shutil.which("kamailio") is None:
        pytest.skip("kamailio is not installed (scripts/sandbox deps installs it)")
    checked = subprocess.run(["kamailio", "-c", "-f", str(tmp_path / "kamailio.cfg")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr[-2000:]
