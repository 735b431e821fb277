"""The sandbox's agent queues and demo agents as Asterisk will read them: rendered by the same
renderer scripts/sandbox runs, from config/sandbox.yaml, then parsed the way Asterisk splits its
config files (sections of `key = value`). The real behaviour is in tests/e2e/test_real_agents.py;
these checks catch a group, an agent or a rule that the templates would silently drop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.agents import answer_scenario, load_agents, register_scenario
from tests.support.asterisk_config import rendered as rendered_config

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "config" / "sandbox.yaml").read_text(encoding="utf-8"))
GROUPS = ["general-zh", "general-en", "vip", "elderly", "cards", "complaints", "risk"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rendered_config(tmp_path_factory.mktemp("asterisk"))


def sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Section name (with its type for sections of the same name) → its (key, value) lines."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    name = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if match := re.fullmatch(r"\[([^\]]+)\]", line):
            name, current = match.group(1), []
            found[name] = current
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current.append((key.rstrip(">").strip(), value))
            if key == "type":
                found[f"{name}/{value}"] = current
    return found


def test_the_skill_groups_are_the_routing_contract() -> None:
    assert VALUES["queues"]["groups"] == GROUPS


def test_each_group_is_a_queue_agents_log_in_to(rendered: Path) -> None:
    queues = sections(rendered / "queues.conf")
    assert dict(queues["general"])["persistentmembers"] == "yes"
    for group in GROUPS:
        settings = dict(queues[f"hotline-{group}"])
        assert "member" not in settings, "no static members: agents log in"
        assert settings["ringinuse"] == "no" and settings["strategy"] == "leastrecent"
        assert settings["announce-position"] == settings["announce-holdtime"] == "no"
        # Turned away only when nobody could answer: never because an agent is busy or paused.
        for rule in ("joinempty", "leavewhenempty"):
            assert not {"inuse", "ringing", "paused", "wrapup", "penalty"} & set(settings[rule].split(",")), rule


def test_each_group_has_its_queue_extension_with_the_agent_hangup_continuing(rendered: Path) -> None:
    dialplan = (rendered / "extensions.conf").read_text(encoding="utf-8")
    agents_context = dialplan.split("[hotline-agents]", 1)[1].split("\n[", 1)[0]
    for group in GROUPS:
        assert f"exten => {group},1," in agents_context
        assert f"Queue(hotline-{group},c,,,{VALUES['queues']['timeout']})" in agents_context
    assert "exten => general,1,Gosub(hotline-language,s,1)" in agents_context
    assert "Local/" not in agents_context and "fake-agent" not in dialplan


def test_the_fallback_apologises_with_our_prompt_then_queues(rendered: Path) -> None:
    fallback = (rendered / "extensions.conf").read_text(encoding="utf-8").split("[hotline-fallback]", 1)[1]
    fallback = fallback.split("\n[", 1)[0]
    assert "Playback(hotline/${HOTLINE_LANGUAGE}/fallback_apology)" in fallback
    assert fallback.rstrip().endswith("Goto(hotline-agents,general,1)")
    for language in ("zh", "en"):
        for prompt in ("fallback_apology", "agents_unavailable", "goodbye"):
            assert (REPO / "sounds" / language / f"{prompt}.wav").is_file()


def test_each_demo_agent_is_a_registering_endpoint_with_one_contact(rendered: Path) -> None:
    pjsip = sections(rendered / "pjsip.conf")
    assert dict(pjsip["global"])["endpoint_identifier_order"] == "username,ip"
    agents = load_agents()
    assert {g for agent in agents for g in agent.groups} == set(GROUPS), "every group has an agent"
    for agent in agents:
        endpoint = dict(pjsip[f"{agent.endpoint}/endpoint"])
        assert endpoint["auth"] == f"{agent.endpoint}-auth" and endpoint["aors"] == agent.endpoint
        assert endpoint["identify_by"] == "username" and endpoint["context"] == "hotline-agent-phones"
        aor = dict(pjsip[f"{agent.endpoint}/aor"])
        assert aor["max_contacts"] == "1" and aor["remove_existing"] == "yes"
        assert int(aor["qualify_frequency"]) > 0, "a dead phone must turn unavailable"
        assert dict(pjsip[f"{agent.endpoint}-auth"])["username"] == agent.endpoint


def test_an_agent_registers_its_answering_port_and_hangs_up_after_its_talk_time() -> None:
    agent = load_agents()[0]
    register = register_scenario(agent, "s3cret-pw", 300)
    assert f"Contact: <sip:{agent.endpoint}@127.0.0.1:{agent.sip_port}>" in register
    assert f"[authentication username={agent.endpoint} password=s3cret-pw]" in register
    answer = answer_scenario(agent, Path("/tmp/tone.ulaw"))
    assert "s3cret-pw" not in answer
    talk_ms = round(agent.talk_s * 1000)
    assert f'<recv request="BYE" timeout="{talk_ms}" ontimeout="agent_bye" next="caller_bye"/>' in answer
