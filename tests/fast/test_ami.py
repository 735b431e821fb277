"""The AMI adapter against the fake AMI server (real TCP, AMI's line protocol, recorded answers):
login, budgets, reconnect, events, queue state, agent actions, header injection, no secret in logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from agi_app.ami import queues
from agi_app.ami.client import AmiClient, AmiLoginRefused, AmiTimeout, AmiUnavailable, EventSubscription
from agi_app.ami.events import (
    QUEUE_EVENTS,
    AgentComplete,
    AmiConnected,
    AmiEvent,
    OtherAmiEvent,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueMemberEvent,
    parse_event,
)
from agi_app.ami.queues import AmiQueueState, InvalidName
from agi_app.centre.queues import QueueStateUnavailable
from agi_app.config import ConfigError, Settings
from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401  (the fixture)
from tests.fake_ami.recordings import clone, recordings
from tests.fake_ami.server import SECRET, USER, FakeAmi, unique_id


def client_for(fake: FakeAmi, *, secret: str = SECRET, connect_timeout: float = 2.0, action_timeout: float = 1.0,
               max_backoff: float = 0.2, keepalive: float = 5.0) -> AmiClient:
    return AmiClient(fake.host, fake.port, USER, secret, connect_timeout=connect_timeout,
                     action_timeout=action_timeout, max_backoff=max_backoff, keepalive=keepalive)


@pytest_asyncio.fixture
async def ami(fake_ami: FakeAmi) -> AsyncIterator[AmiClient]:  # noqa: F811
    async with client_for(fake_ami) as client:
        yield client


async def next_event(subscription: EventSubscription, name: str, timeout: float = 3.0) -> AmiEvent:
    """The next event of this name from a subscription (others skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await subscription.get()
            assert event is not None, "subscription closed"
            if event.name == name:
                return event


async def test_login_with_a_wrong_secret_is_refused_and_says_so(fake_ami: FakeAmi) -> None:  # noqa: F811
    with pytest.raises(AmiLoginRefused, match="Authentication failed"):
        async with client_for(fake_ami, secret="not-the-secret"):
            pass
    assert fake_ami.logins == 0


async def test_nothing_listening_is_unavailable_at_once(fake_ami: FakeAmi) -> None:  # noqa: F811
    port = fake_ami.port
    await fake_ami.stop()
    client = AmiClient("127.0.0.1", port, USER, SECRET, connect_timeout=5.0)
    started = asyncio.get_running_loop().time()
    with pytest.raises(AmiUnavailable, match="ConnectionRefusedError"):
        async with client:
            pass
    assert asyncio.get_running_loop().time() - started < 1.0  # the first failure, not the whole budget


async def test_a_peer_that_never_answers_the_login_exhausts_the_connect_budget(fake_ami: FakeAmi) -> None:  # noqa: F811
    fake_ami.silent = True
    with pytest.raises(AmiUnavailable, match="no login within 0.3s"):
        async with client_for(fake_ami, connect_timeout=0.3):
            pass


async def test_an_action_past_its_budget_raises_a_timeout(fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    fake_ami.silent = True
    with pytest.raises(AmiTimeout, match="QueueStatus: no answer within 0.2s"):
        await ami.action("QueueStatus", complete="QueueStatusComplete", timeout=0.2)


async def test_queue_state_is_unavailable_when_ami_is_slow_down_or_the_queue_unknown(
        fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    state = AmiQueueState(ami, timeout=0.2)
    with pytest.raises(QueueStateUnavailable, match="no queue hotline-nowhere"):
        await state.snapshot("nowhere")
    fake_ami.silent = True
    with pytest.raises(QueueStateUnavailable, match="no answer"):
        await state.snapshot("general-zh")
    await ami.close()
    with pytest.raises(QueueStateUnavailable, match="not connected"):
        await state.snapshot("general-zh")


async def test_a_snapshot_carries_members_callers_and_asterisks_own_figures(
        fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    await queues.login(ami, "agent-1001", ["vip"])
    await queues.login(ami, "agent-1003", ["vip"], name="emma")
    await queues.pause(ami, "agent-1001", True, reason="lunch")
    fake_ami.set_member("hotline-vip", "PJSIP/agent-1001", status=2, in_call=True, calls_taken=3)
    fake_ami.set_member("hotline-vip", "PJSIP/agent-1003", status=1)
    fake_ami.add_caller("hotline-vip", "PJSIP/caller-00000001", "1795446008.5")
    fake_ami.add_caller("hotline-vip", "PJSIP/caller-00000002", "1795446008.7")

    snap = await AmiQueueState(ami).snapshot("vip")

    assert snap.queue == "vip"
    members = {m.interface: m for m in snap.members}
    busy, free = members["PJSIP/agent-1001"], members["PJSIP/agent-1003"]
    assert (busy.name, busy.paused, busy.in_call, busy.status, busy.calls_taken) == \
        ("agent-1001", True, True, "in_use", 3)
    assert (free.name, free.paused, free.in_call, free.status) == ("emma", False, False, "not_in_use")
    assert [(e.position, e.unique_id) for e in snap.entries] == [(1, "1795446008.5"), (2, "1795446008.7")]
    assert snap.waiting == 2 and snap.agents_available == 1  # the paused agent does not count
    assert snap.extra["Strategy"] == "leastrecent"


async def test_queue_params_figures_are_read(fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    from tests.fake_ami.recordings import clone
    q = fake_ami.queues["hotline-general-zh"]
    q.params = clone(q.params, Holdtime=42, TalkTime=180, Completed=7, Abandoned=2)
    snap = await AmiQueueState(ami).snapshot("general-zh")
    assert (snap.asterisk_holdtime_s, snap.asterisk_talktime_s, snap.completed, snap.abandoned) == (42, 180, 7, 2)


async def test_agent_login_pause_logout_change_the_queues(fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    changes = await queues.login(ami, "agent-7", ["general-zh", "cards"], penalty=2)
    assert [(c.group, c.changed) for c in changes] == [("general-zh", True), ("cards", True)]
    add = next(a for a in fake_ami.actions if a["Action"] == "QueueAdd")
    assert {k: add[k] for k in ("Queue", "Interface", "StateInterface", "MemberName", "Penalty")} == \
        {"Queue": "hotline-general-zh", "Interface": "PJSIP/agent-7", "StateInterface": "PJSIP/agent-7",
         "MemberName": "agent-7", "Penalty": "2"}
    again = await queues.login(ami, "agent-7", ["general-zh"])
    assert [(c.group, c.changed) for c in again] == [("general-zh", False)]

    await queues.pause(ami, "agent-7", True, reason="lunch", group="cards")
    assert fake_ami.queues["hotline-cards"].members["PJSIP/agent-7"].paused
    assert not fake_ami.queues["hotline-general-zh"].members["PJSIP/agent-7"].paused
    listed = {(a.agent, a.group): a for a in await queues.agents(ami)}
    assert listed[("agent-7", "cards")].paused and not listed[("agent-7", "general-zh")].paused

    out = await queues.logout(ami, "agent-7")
    assert sorted(c.group for c in out if c.changed) == ["cards", "general-zh"]
    assert not any("PJSIP/agent-7" in q.members for q in fake_ami.queues.values())
    with pytest.raises(queues.NotLoggedIn):
        await queues.pause(ami, "agent-7", True)


@pytest.mark.parametrize("agent_id", ["1001\r\nAction: Originate", "a b", "", "x" * 41, "1001:", "PJSIP/1001"])
async def test_an_agent_id_that_could_break_an_ami_line_is_refused_before_sending(
        fake_ami: FakeAmi, ami: AmiClient, agent_id: str) -> None:  # noqa: F811
    sent = len(fake_ami.raw)
    with pytest.raises(InvalidName):
        await queues.login(ami, agent_id, ["general-zh"])
    with pytest.raises(InvalidName):
        await queues.pause(ami, agent_id, True)
    assert len(fake_ami.raw) == sent


async def test_no_header_with_a_line_break_reaches_the_wire(fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    sent = len(fake_ami.raw)
    with pytest.raises(ValueError, match="would break the AMI line"):
        await queues.pause(ami, "1001", True, reason="lunch\r\nAction: Originate")
    assert len(fake_ami.raw) == sent


async def test_queue_events_arrive_typed(fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    events = ami.subscribe(["QueueCallerJoin", "QueueCallerAbandon", "AgentComplete", "QueueMemberPause"])
    fake_ami.add_caller("hotline-general-zh", "PJSIP/caller-00000009", "1795446010.9")
    fake_ami.push("AgentComplete", Queue="hotline-general-zh", Uniqueid="1795446010.9", Interface="PJSIP/1001",
                  MemberName="1001", HoldTime=12, TalkTime=95, Reason="caller")
    fake_ami.push("QueueCallerAbandon", Queue="hotline-general-zh", Uniqueid="1795446011.1", Position=2,
                  OriginalPosition=3, HoldTime=40)
    fake_ami.push("QueueMemberStatus", Queue="hotline-general-zh")  # not subscribed: not delivered
    await queues.login(ami, "1001", ["general-zh"])
    await queues.pause(ami, "1001", True, reason="training")

    join = await next_event(events, "QueueCallerJoin")
    assert join == QueueCallerJoin("QueueCallerJoin", "hotline-general-zh", "1795446010.9", "PJSIP/caller-00000009",
                                   1, count=1)
    complete = await next_event(events, "AgentComplete")
    assert isinstance(complete, AgentComplete)
    assert (complete.interface, complete.hold_time_s, complete.talk_time_s, complete.reason) == \
        ("PJSIP/1001", 12, 95, "caller")
    abandon = await next_event(events, "QueueCallerAbandon")
    assert isinstance(abandon, QueueCallerAbandon)
    assert (abandon.position, abandon.original_position, abandon.hold_time_s) == (2, 3, 40)
    paused = await next_event(events, "QueueMemberPause")
    assert isinstance(paused, QueueMemberEvent)
    assert (paused.queue, paused.member.interface, paused.member.paused, paused.paused_reason) == \
        ("hotline-general-zh", "PJSIP/1001", True, "training")
    events.close()
    assert await events.get() is None


async def test_a_full_subscription_drops_and_counts_instead_of_holding_the_socket(
        fake_ami: FakeAmi, ami: AmiClient) -> None:  # noqa: F811
    events = ami.subscribe(["QueueCallerJoin"], queue_size=2)
    for n in range(5):
        fake_ami.add_caller("hotline-general-zh", f"PJSIP/c-{n}", unique_id())
    await ami.ping()  # answered after the five events: they were all read
    assert events.dropped == 3
    assert (await events.get()).name == "QueueCallerJoin"  # type: ignore[union-attr]


async def test_after_a_dropped_connection_it_reconnects_and_events_flow_again(
        fake_ami: FakeAmi, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="hotline.ami")
    async with client_for(fake_ami, max_backoff=0.1) as ami:
        events = ami.subscribe(["QueueCallerJoin"])
        fake_ami.drop()
        with pytest.raises(AmiUnavailable):
            for _ in range(50):  # the loss is seen as soon as the socket closes
                await ami.ping()
                await asyncio.sleep(0.01)
        assert not ami.connected
        await ami.wait_connected(3)
        assert isinstance(await next_event(events, "AmiConnected"), AmiConnected)  # resync cue
        fake_ami.add_caller("hotline-general-zh", "PJSIP/caller-00000003", "1795446020.3")
        join = await next_event(events, "QueueCallerJoin")
        assert join.unique_id == "1795446020.3"  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records if r.name == "hotline.ami"]
    assert sum(line.startswith("event=ami_connected ") for line in lines) == 1
    assert sum(line.startswith("event=ami_lost ") for line in lines) == 1
    assert sum(line.startswith("event=ami_reconnected ") for line in lines) == 1
    assert fake_ami.logins == 2


async def test_a_peer_that_stops_answering_is_noticed_by_the_keepalive_and_left(fake_ami: FakeAmi) -> None:  # noqa: F811
    async with client_for(fake_ami, keepalive=0.1, action_timeout=0.2, max_backoff=5.0) as ami:
        fake_ami.silent = True
        for _ in range(100):  # keepalive 0.1 s + Ping budget 0.2 s
            if not ami.connected:
                break
            await asyncio.sleep(0.02)
        assert not ami.connected
        with pytest.raises(AmiUnavailable, match="not connected"):
            await ami.ping()


async def test_the_secret_appears_in_no_log_repr_or_error(
        fake_ami: FakeAmi, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    client = client_for(fake_ami)
    async with client as ami:
        await ami.ping()
        fake_ami.drop()
        await asyncio.sleep(0.3)
    with pytest.raises(AmiLoginRefused) as refused:
        async with client_for(fake_ami, secret="wrong-" + SECRET):
            pass
    seen = caplog.text + repr(client) + str(refused.value) + repr(Settings(ami_password=SECRET))
    assert "event=ami_login_refused" in caplog.text
    assert SECRET not in seen
    assert all(a.get("Secret") == "********" for a in fake_ami.actions if a["Action"] == "Login")


async def test_close_leaves_no_task_behind(fake_ami: FakeAmi) -> None:  # noqa: F811
    before = asyncio.all_tasks()
    async with client_for(fake_ami) as ami:
        ami.subscribe()
        await ami.ping()
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() - before if not t.get_name().startswith("Task-")} == set()
    assert all(t.done() for t in asyncio.all_tasks() - before if "ami" in t.get_name())


async def test_a_message_cut_between_reads_anywhere_arrives_whole_with_its_chinese_intact() -> None:
    """TCP may cut a message, even inside a UTF-8 character; a peer writing one byte at a time proves it."""
    def wire(message: tuple[tuple[str, str], ...]) -> bytes:
        return ("".join(f"{k}: {v}\r\n" for k, v in message) + "\r\n").encode()

    async def trickling_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{recordings().banner}\r\n".encode())
        login = [(await reader.readline()).decode() for _ in range(6)]
        action_id = next(line.split(": ")[1].strip() for line in login if line.startswith("ActionID"))
        writer.write(wire(clone(recordings().response("Login", "Authentication accepted"), ActionID=action_id)))
        for byte in wire(clone(recordings().event("PeerStatus"), Peer="PJSIP/王芳")):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.read()

    server = await asyncio.start_server(trickling_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, AmiClient("127.0.0.1", port, USER, SECRET, connect_timeout=2.0) as ami:
        event = await next_event(ami.subscribe(["PeerStatus"]), "PeerStatus")
        assert isinstance(event, OtherAmiEvent) and event.headers["Peer"] == "PJSIP/王芳"


def test_every_recorded_queue_event_of_the_sandbox_parses_into_its_type() -> None:
    recorded = recordings().events
    parsed = {name: parse_event(dict(recorded[name])) for name in QUEUE_EVENTS & set(recorded)}
    assert set(parsed) >= {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
                           "AgentComplete", "QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded"}
    assert not any(isinstance(event, OtherAmiEvent) for event in parsed.values())
    complete = parsed["AgentComplete"]
    assert isinstance(complete, AgentComplete)
    assert (complete.queue, complete.interface, complete.member_name, complete.talk_time_s, complete.reason) == \
        ("hotline-general-zh", "PJSIP/agent-1001", "agent-1001", 2, "agent")
    abandon = parsed["QueueCallerAbandon"]
    assert isinstance(abandon, QueueCallerAbandon)
    assert (abandon.queue, abandon.position, abandon.original_position, abandon.hold_time_s) == \
        ("hotline-elderly", 1, 1, 4)
    join = parsed["QueueCallerJoin"]  # the same recorded caller (recordings keep each name's first)
    assert isinstance(join, QueueCallerJoin) and join.unique_id == abandon.unique_id and join.count == 1


def test_settings_give_the_client_its_address_and_budgets() -> None:
    client = AmiClient.from_settings(Settings(ami_url="tcp://10.0.0.5:6038", ami_user="u", ami_password="p",
                                              ami_action_ms=1500))
    assert (client.host, client.port, client._action_timeout) == ("10.0.0.5", 6038, 1.5)
    with pytest.raises(ConfigError, match="HOTLINE_AMI_USER"):
        AmiClient.from_settings(Settings(ami_user="", ami_password=""))
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        AmiClient.from_settings(Settings(ami_url="tcp://u:p@host:5038", ami_user="u", ami_password="p"))
