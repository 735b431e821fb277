"""Walks a flow's nodes for one call, through the small `FlowCall` protocol the engine's call
session satisfies (play, collect digits, transfer, hang up, discard after secure input, log,
record the journey), so the flows know nothing of the engine or the transport.

Each node type has one small coroutine returning the reference of the next node, or None when the
call has left the flow; `_step` dispatches on the node's class (mypy checks every type is
handled). The same code serves live calls, `hotline simulate` and previews.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol, assert_never

from agi_app.caller_facts import CallerFacts
from agi_app.flows.context import FlowContext, matches
from agi_app.flows.model import (
    AGENTS_CONTEXT,
    RETURN,
    AnnouncementNode,
    CollectNode,
    ConditionNode,
    FlowSet,
    HangupNode,
    JumpNode,
    MenuNode,
    Node,
    ProcessNode,
    Prompt,
    RecordNode,
    ReturnNode,
    SubNode,
    SurveyNode,
    TransferNode,
)
from agi_app.flows.prompts import PromptError, render
from agi_app.flows.queueing import (
    CALLBACK_KEY,
    RECORDING_NOTICE,
    DialTarget,
    QueueAdvice,
    QueueAdviceUnavailable,
    QueueDesk,
    announcement,
    callback_number,
    dial_target,
    should_offer_callback,
)
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry, ServiceResult
from agi_app.flows.survey import NoAnswer, no_answer_reason, survey_score
from agi_app.media.items import MediaItem, Sound
from agi_app.media.resolver import MediaResolver
from agi_app.secure import SecretDigits

MAX_STEPS = 500
KEY_SOUNDS = {"*": "keys/star", "#": "keys/hash"}
#: Seconds a `process` node's service may run before the caller hears "please hold" (and again
#: after each such prompt): under the fault matrix's 5 s of silence, with the 0.7 s of quiet after
#: a PIN before it.
HOLD_AFTER_S = 2.0


class FlowError(Exception):
    """The flow cannot continue (e.g. a step limit reached: a loop with no exit)."""


class JourneyRecorder(Protocol):
    """Where the flow records what the caller did (the engine's `Journey`)."""

    def node(self, node_id: str) -> None: ...

    def input(self, value: str | SecretDigits, result: str) -> str:
        """Record an input; returns what may be shown of it (secure input masked)."""

    def service(self, service: str, result: ServiceResult) -> None: ...

    def survey(self, node_id: str, score: int | None, no_answer: NoAnswer | None = None) -> None:
        """A survey's score 1–5, or None and why (`flows.survey`)."""

    def queue_leg(self, group: str, *, announced_position: int | None, announced_wait_s: int | None,
                  asterisk_wait_s: int | None, result: str) -> None:
        """The call was handed to a skill group (`result` waiting) or took a callback instead
        (`callback`), with what it was told."""


class DigitEntry(Protocol):
    @property
    def digits(self) -> str: ...

    @property
    def timed_out(self) -> bool: ...


class RecordedMessage(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def duration_s(self) -> int: ...


class FlowCall(Protocol):
    """What a flow needs of the call it runs in (the engine's `CallSession`)."""

    @property
    def call_id(self) -> str: ...

    @property
    def journey(self) -> JourneyRecorder: ...

    def log(self, event: str, *, level: int = logging.INFO, **fields: object) -> None: ...

    async def play(self, media: Sequence[str], *, interruptible: bool = True) -> bool:
        """Play in order; True if a digit interrupted it (type-ahead: buffered digits skip it)."""

    async def get_digits(self, *, prompt: Sequence[str] = (), max_digits: int = 1, first_timeout: float = 5.0,
                         inter_timeout: float = 3.0, terminator: str = "") -> DigitEntry: ...

    async def discard_after_secure_input(self) -> None:
        """Drop what the caller types beyond secure input until they pause."""

    async def record(self, label: str, *, max_seconds: int, max_silence_seconds: int) -> RecordedMessage | None:
        """Record the caller after a beep into a generated name starting with `label`; None if
        telephony could not record."""

    async def transfer(self, context: str, extension: str, target: str, *, language: str | None) -> None:
        """Hand the call to the dialplan, whose own prompts are then in `language`."""

    async def hangup(self) -> None: ...


class FlowListener(Protocol):
    """Observes menus as they are offered (previews and the terminal simulator)."""

    async def menu_offered(self, node: MenuNode, media: list[str], options: list[tuple[str, str]]) -> None: ...


def key_sound(key: str) -> str:
    return KEY_SOUNDS.get(key, f"digits/{key}")


def announce_option(key: str, said: list[MediaItem], language: str) -> list[MediaItem]:
    """How a composed menu announces one option: its `say` prompt, then its key (nothing if silent)."""
    return [*said, Sound(key_sound(key), language)] if said else []


class FlowRunner:
    def __init__(self, call: FlowCall, flows: FlowSet, ctx: FlowContext, media: MediaResolver,
                 services: ServiceRegistry | None = None, listener: FlowListener | None = None,
                 desk: QueueDesk | None = None) -> None:
        self.call = call
        self.flows = flows
        self.ctx = ctx
        self.media = media
        self.services = services or ServiceRegistry()
        self.listener = listener
        self.desk = desk  # None: transfers go straight to the queue (simulation, previews, no AMI)
        self.menus: list[tuple[str, str]] = []  # menu stack for the "back" key
        self.returns: list[tuple[str, str]] = []  # (flow, next ref) of `sub` nodes being run

    @property
    def language(self) -> str:
        return self.ctx.language

    async def run(self) -> None:
        line = self.ctx.line
        current: tuple[str, str] | None = (line.flow, self.flows.flows[line.flow].start)
        for _ in range(MAX_STEPS):
            if current is None:
                return
            flow_name, node_id = current
            node = self.flows.flows[flow_name].nodes[node_id]
            self.call.journey.node(node_id)
            self.call.log("node", flow=flow_name, node=node_id, type=node.type)
            ref = await _step(self, flow_name, node)
            current = self.follow(flow_name, ref) if ref else None
        raise FlowError(f"more than {MAX_STEPS} steps: a loop with no exit")

    def follow(self, flow_name: str, ref: str) -> tuple[str, str] | None:
        if ref.startswith("@"):  # internal: a menu stack target already resolved
            flow, _, node = ref[1:].partition(":")
            return flow, node
        if ref == RETURN:
            if not self.returns:
                return None
            caller_flow, next_ref = self.returns.pop()
            return self.follow(caller_flow, next_ref)
        target = self.flows.resolve(flow_name, ref)
        if target is None:
            raise FlowError(f"{flow_name}: reference {ref!r} points nowhere")
        return target

    # --- media --------------------------------------------------------------------------
    def items(self, node: Node, prompt: Prompt | None, label: str = "prompt") -> list[MediaItem] | None:
        """Rendered media items; None if the template failed (logged; the caller gets a safe prompt)."""
        if prompt is None:
            return []
        try:
            return render(prompt, self.language, self.ctx.template_context())
        except PromptError as exc:
            self.call.log("prompt_error", level=logging.ERROR, node=node.id, field=label, error=str(exc),
                          caller_gets="technical_difficulty")
            return None

    async def uris(self, items: list[MediaItem]) -> list[str]:
        return await self.media.uris(items, call_id=self.call.call_id)

    async def media_for(self, node: Node, prompt: Prompt | None, label: str = "prompt") -> list[str] | None:
        items = self.items(node, prompt, label)
        return None if items is None else await self.uris(items)

    async def sound(self, sound_id: str) -> list[str]:
        return await self.uris([Sound(sound_id, self.language)])

    async def transfer_to(self, destination_name: str, prompt: list[str], *, announce: bool = False) -> None:
        """Hand the call to a configured destination — nothing else is ever dialled. With `announce`
        (the caller asked for an agent: a transfer node, the agent key) a queue transfer first says
        where the caller stands and may offer a callback instead (`_before_queue`). A transfer to
        the agents' context ends its prompt with the recording notice (agent calls are recorded)."""
        destination = self.flows.destinations[destination_name]
        target = dial_target(destination, self.ctx)
        desk = self.desk if announce and target.group is not None else None
        # every call into the agent queues' context is recorded (a queue destination, or a fixed place
        # there): the caller is told with the transfer's prompt, in the same request
        notice = await self.sound(RECORDING_NOTICE) if target.context == AGENTS_CONTEXT else []
        # read while the prompt plays: no silence between it and the announcement
        advice = (asyncio.create_task(_advise(self.call, desk, target.group))
                  if desk is not None and target.group is not None else None)
        try:
            await self.call.play([*prompt, *notice], interruptible=False)
            if desk is not None and advice is not None:
                if await _before_queue(self, desk, target, await advice, destination.callback_offer_wait_s):
                    return
            elif target.group is not None:
                self.call.journey.queue_leg(target.group, announced_position=None, announced_wait_s=None,
                                            asterisk_wait_s=None, result="waiting")
            await self.call.transfer(target.context, target.extension, destination_name, language=self.language)
        finally:
            if advice is not None and not advice.done():
                advice.cancel()
                await asyncio.wait({advice})
            if desk is not None and target.group is not None:
                desk.forget(self.call.call_id, target.group)  # in the queue now, called back, or gone

    def input(self, node: Node, value: str | SecretDigits, result: str) -> None:
        """Record and log an input: both show what the journey decides may be shown (`shown_input`)."""
        shown = self.call.journey.input(value, result)
        self.call.log("input", node=node.id, input=shown or None, result=result)


async def _step(run: FlowRunner, flow: str, node: Node) -> str | None:
    """Run one node; the reference to go on to, or None when the call has left the flow."""
    match node:
        case MenuNode():
            return await _menu(run, flow, node)
        case AnnouncementNode():
            return await _announcement(run, node)
        case CollectNode():
            return await _collect(run, node)
        case ProcessNode():
            return await _process(run, node)
        case ConditionNode():
            return _condition(run, node)
        case TransferNode():
            return await _transfer(run, node)
        case HangupNode():
            return await _hangup(run, node)
        case JumpNode():
            return node.next
        case SubNode():
            run.returns.append((flow, node.next))
            return f"{node.flow}:"
        case ReturnNode():
            return RETURN
        case SurveyNode():
            return await _survey(run, node)
        case RecordNode():
            return await _record(run, node)
        case _:
            assert_never(node)


async def _announcement(run: FlowRunner, node: AnnouncementNode) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media if media is not None else await run.sound("technical_difficulty"),
                        interruptible=node.interruptible)
    if node.service:
        run.call.journey.service(node.service, "ok")
    return node.next


def menu_items(run: FlowRunner, node: MenuNode) -> list[MediaItem] | None:
    """A menu's prompt: a whole `prompt`, or `intro` + each option's `say` followed by its key."""
    if node.prompt is not None:
        return run.items(node, node.prompt)
    items = run.items(node, node.intro, "intro")
    if items is None:
        return None
    for key, option in node.options.items():
        said = run.items(node, option.say, f"option {key} say")
        if said is None:
            return None
        items += announce_option(key, said, run.language)
    return items


async def _menu(run: FlowRunner, flow: str, node: MenuNode) -> str | None:
    call, keys = run.call, run.flows.keys
    items = menu_items(run, node)
    if items is None:  # a menu the caller cannot hear is a menu they cannot use: go to an agent
        await run.transfer_to(run.ctx.line.agent, await run.sound("technical_difficulty"))
        return None
    prompt = await run.uris(items)
    invalid_prompt = await run.media_for(node, node.invalid_prompt, "invalid_prompt") or []
    timeout_prompt = await run.media_for(node, node.timeout_prompt, "timeout_prompt") or []
    options, universal = node.options, node.universal_keys
    here = (flow, node.id)
    if not run.menus or run.menus[-1] != here:
        run.menus.append(here)
    if run.listener:
        await run.listener.menu_offered(node, prompt, [(k, o.shown) for k, o in options.items()])
    invalid = timeouts = 0
    media = prompt
    while True:
        entry = await call.get_digits(prompt=media, max_digits=1, first_timeout=node.timeout,
                                      inter_timeout=node.inter_digit_timeout)
        key = entry.digits
        if not key:
            timeouts += 1
            run.input(node, "", "timeout")
            if timeouts >= node.max_timeout:
                return node.on_timeout_exceeded
            media = timeout_prompt + prompt
            continue
        if key in options:
            run.input(node, key, "option")
            return options[key].next
        if universal and key == keys.agent:
            run.input(node, key, "agent")
            await run.transfer_to(run.ctx.line.agent, await run.sound("transfer_agent"), announce=True)
            return None
        if universal and key == keys.repeat:
            run.input(node, key, "repeat")
            media = prompt
            continue
        if universal and key == keys.back and len(run.menus) > 1:
            run.input(node, key, "back")
            run.menus.pop()
            previous_flow, previous_node = run.menus[-1]
            return f"@{previous_flow}:{previous_node}"
        invalid += 1
        run.input(node, key, "invalid")
        if invalid >= node.max_invalid:
            return node.on_invalid_exceeded
        media = invalid_prompt + prompt


async def _collect(run: FlowRunner, node: CollectNode) -> str | None:
    """Multi-digit input; with `secure`, kept as SecretDigits (masked in logs and journeys), and what
    the caller types beyond it is discarded until they pause, however the entry ended."""
    next_ref = await _collect_entry(run, node)
    if node.secure:  # entry complete, too short, or given up: the call goes on (a hangup ends it above)
        await run.call.discard_after_secure_input()
    return next_ref


async def _collect_entry(run: FlowRunner, node: CollectNode) -> str | None:
    prompt = await run.media_for(node, node.prompt) or []
    invalid_prompt = await run.media_for(node, node.invalid_prompt, "invalid_prompt") or []
    timeout_prompt = await run.media_for(node, node.timeout_prompt, "timeout_prompt") or []
    media = prompt
    for _ in range(node.max_attempts):
        entry = await run.call.get_digits(prompt=media, max_digits=node.max_length, terminator=node.terminator,
                                          first_timeout=node.timeout, inter_timeout=node.inter_digit_timeout)
        value = SecretDigits(entry.digits) if node.secure else entry.digits
        if entry.timed_out:
            run.input(node, "", "timeout")
            media = timeout_prompt + prompt
            continue
        if len(entry.digits) < node.min_length:
            run.input(node, value, "invalid")
            media = invalid_prompt + prompt
            continue
        run.input(node, value, "ok")
        run.ctx.variables[node.variable] = value
        return node.next
    return node.on_failure


async def _process(run: FlowRunner, node: ProcessNode) -> str | None:
    name = node.service
    service = run.services.get(name)
    request = ServiceCall(name, run.call.call_id, run.ctx.caller, run.ctx.line.number, run.language,
                          run.ctx.facts, dict(run.ctx.variables), dict(node.params), run.ctx.authenticated)
    outcome = ServiceOutcome("failed")
    if service is None:
        run.call.log("service_missing", level=logging.ERROR, node=node.id, service=name)
    else:
        try:
            outcome = await _served(run, service(request), node.timeout)
        except asyncio.CancelledError:  # the caller left while it ran: say so in the journey, then go
            run.call.journey.service(name, "abandoned")
            raise
        except Exception as exc:  # noqa: BLE001 - a failing service is a "failed" result, not a dropped call
            run.call.log("service_error", level=logging.ERROR, node=node.id, service=name, error=type(exc).__name__)
    result = outcome.result
    run.ctx.variables.update(outcome.variables)
    run.call.journey.service(name, result)
    run.call.log("service", node=node.id, service=name, result=result)
    if outcome.authenticated is not None and result == "ok":
        _authenticated(run, node, outcome.authenticated)
    await run.call.play(await run.uris(outcome.say))
    after = await run.media_for(node, node.prompt)
    if outcome.transfer is not None:
        if outcome.transfer in run.flows.destinations:
            await run.transfer_to(outcome.transfer, after or [])
            return None
        run.call.log("service_route_unknown", level=logging.ERROR, node=node.id, service=name,
                     destination=outcome.transfer)
    await run.call.play(after or [])
    if result == "refused":
        return node.on_refused or node.next
    if result == "failed":
        return node.on_failed or node.next
    return node.next


async def _served(run: FlowRunner, work: Awaitable[ServiceOutcome], timeout: float) -> ServiceOutcome:
    """The service's outcome within `timeout`. Every HOLD_AFTER_S it is still running, the caller
    hears "please hold": a slow bank (a database past its budget) must not leave them in silence
    for the whole timeout. Not `within`: a service past its timeout is cancelled and then AWAITED,
    so what the caller hears is what happened — a transfer whose commit was already on its way
    reports ok, never "failed" for money that moved (the caller would try again)."""
    async def bounded() -> ServiceOutcome:
        async with asyncio.timeout(timeout):
            return await work

    task = asyncio.ensure_future(bounded())
    try:
        while not (await asyncio.wait({task}, timeout=HOLD_AFTER_S))[0]:
            await run.call.play(await run.sound("please_hold"), interruptible=False)
        return task.result()
    finally:
        if not task.done():  # the caller hung up: the service is cancelled, and awaited
            task.cancel()
            await asyncio.wait({task})


def _authenticated(run: FlowRunner, node: ProcessNode, facts: CallerFacts) -> None:
    """The service checked the caller's credentials: from here on the call is theirs — conditions see
    `authenticated`, templates greet them by name, services act for `facts`' customer."""
    run.ctx.authenticated = True
    run.ctx.facts = facts
    run.call.log("authenticated", node=node.id, service=node.service, customer=facts.text("customer_id"))


def _condition(run: FlowRunner, node: ConditionNode) -> str | None:
    for index, branch in enumerate(node.branches, start=1):
        if matches(branch.when, run.ctx):
            run.call.log("branch", node=node.id, taken=index)
            return branch.next
    run.call.log("branch", node=node.id, taken="else")
    return node.otherwise


async def _transfer(run: FlowRunner, node: TransferNode) -> str | None:
    media = await run.media_for(node, node.prompt)
    if node.service:
        run.call.journey.service(node.service, "ok")
    await run.transfer_to(node.destination or run.ctx.line.agent, media or [], announce=True)
    return None


async def _advise(call: FlowCall, desk: QueueDesk, group: str) -> QueueAdvice | None:
    """The desk's advice on `group`; None (logged) when live state cannot be had in time: a caller
    is never held back for it — the desk keeps the time budget."""
    try:
        return await desk.advise(call.call_id, group)
    except QueueAdviceUnavailable as exc:
        call.log("queue_advice_unavailable", level=logging.WARNING, queue=group, error=str(exc) or None)
    except Exception as exc:  # noqa: BLE001 - a broken desk must not cost the caller the transfer
        call.log("queue_advice_failed", level=logging.ERROR, queue=group, error=type(exc).__name__)
    return None


async def _before_queue(run: FlowRunner, desk: QueueDesk, target: DialTarget, advice: QueueAdvice | None,
                        threshold_s: int | None) -> bool:
    """Tell the caller their place and wait in `target`'s group (nothing without `advice`, or when an
    agent is free now), offering a callback when the wait is long; record the queue leg. True when
    the caller took a callback (the call is over)."""
    call, group = run.call, target.group
    assert group is not None
    if advice is None:
        call.journey.queue_leg(group, announced_position=None, announced_wait_s=None, asterisk_wait_s=None,
                               result="waiting")
        return False
    if advice.immediate:  # nothing worth saying; the estimate (0) still counts against the actual wait
        _record_announced(run, group, advice, "waiting")
        return False
    number = callback_number(run.ctx.caller) if desk.offers_callbacks else None
    offer = number is not None and should_offer_callback(
        advice, desk.callback_offer_wait_s if threshold_s is None else threshold_s)
    call.log("queue_advice", queue=group, position=advice.position, wait_s=advice.wait_s,
             asterisk_wait_s=advice.asterisk_wait_s, callback_offer="yes" if offer else None)
    items = announcement(advice, run.language)
    if not offer or number is None:
        await call.play(await run.uris(items), interruptible=False)
    else:
        prompt = await run.uris([*items, Sound("callback_offer", run.language)])
        entry = await call.get_digits(prompt=prompt, max_digits=1, first_timeout=desk.callback_key_timeout_s)
        if entry.digits == CALLBACK_KEY and await _book_callback(run, desk, number, group, advice):
            return True
    _record_announced(run, group, advice, "waiting")
    return False


async def _book_callback(run: FlowRunner, desk: QueueDesk, number: str, group: str, advice: QueueAdvice) -> bool:
    """The caller pressed the callback key: book it, confirm and hang up; False (the caller is
    transferred as they would have been) when it could not be booked."""
    call = run.call
    try:
        booked = await desk.book_callback(call.call_id, run.ctx.facts.text("customer_id"), number, group)
    except Exception as exc:  # noqa: BLE001 - the desk keeps its own budget; failing means "wait instead"
        call.log("callback_book_failed", level=logging.ERROR, queue=group, error=type(exc).__name__)
        booked = False
    call.journey.service("callback", "ok" if booked else "failed")
    call.log("callback", queue=group, result="booked" if booked else "failed")
    if not booked:
        return False
    _record_announced(run, group, advice, "callback")
    await call.play(await run.sound("callback_confirmed"), interruptible=False)
    await call.hangup()
    return True


def _record_announced(run: FlowRunner, group: str, advice: QueueAdvice, result: str) -> None:
    """The leg with what the caller was told: the position and the estimate (seconds, before rounding
    to minutes; 0 when an agent was free and nothing was said) beside Asterisk's, so announced and
    actual waits can be compared later."""
    run.call.journey.queue_leg(group, announced_position=advice.position, announced_wait_s=advice.wait_s,
                               asterisk_wait_s=advice.asterisk_wait_s, result=result)


async def _hangup(run: FlowRunner, node: HangupNode) -> str | None:
    media = await run.media_for(node, node.prompt)
    await run.call.play(media or [], interruptible=False)
    await run.call.hangup()
    return None


#: The key that records the message again after hearing it; any other key, or none, keeps it.
RECORD_AGAIN_KEY = "2"


async def _record(run: FlowRunner, node: RecordNode) -> str | None:
    """The caller records a message and hears it back; it is kept in `node.variable` (its name)
    unless they press 2 to record it again. An empty message (under a second) is asked again."""
    prompt = await run.media_for(node, node.prompt) or []
    confirm = await run.media_for(node, node.confirm_prompt, "confirm_prompt") or []
    for _ in range(node.max_attempts):
        await run.call.play(prompt, interruptible=False)
        recording = await run.call.record(node.id, max_seconds=node.max_seconds, max_silence_seconds=node.max_silence)
        if recording is None:
            run.input(node, "", "failed")
            return node.on_failure
        if recording.duration_s < 1:
            run.input(node, "", "empty")
            continue
        entry = await run.call.get_digits(prompt=[f"recording:{recording.name}", *confirm], max_digits=1,
                                          first_timeout=node.timeout)
        if entry.digits == RECORD_AGAIN_KEY:
            run.input(node, entry.digits, "record_again")
            continue
        run.input(node, entry.digits, "kept")
        run.ctx.variables[node.variable] = recording.name
        return node.next
    return node.on_failure


async def _survey(run: FlowRunner, node: SurveyNode) -> str | None:
    """One key from 1 to 5 is the score (`flows.survey`); anything else is no answer, recorded with
    its reason and without the key. A caller who hangs up during the survey is no answer too."""
    prompt = await run.media_for(node, node.prompt) or []
    try:
        entry = await run.call.get_digits(prompt=prompt, max_digits=1, first_timeout=node.timeout)
    except asyncio.CancelledError:  # the caller hung up (or the call was given up): recorded, then gone
        run.call.journey.survey(node.id, None, "hangup")
        run.call.log("survey", node=node.id, result="no_answer", reason="hangup")
        raise
    score = survey_score(entry.digits)
    if score is None:
        reason = no_answer_reason(entry.digits)
        run.input(node, entry.digits, "no_answer")  # the key is never shown: not an accepted result
        run.call.journey.survey(node.id, None, reason)
        run.call.log("survey", node=node.id, result="no_answer", reason=reason)
        return node.next
    run.input(node, entry.digits, "score")
    run.call.journey.survey(node.id, score)
    run.call.log("survey", node=node.id, result="ok", score=score)
    await run.call.play(await run.media_for(node, node.thanks_prompt) or [], interruptible=False)
    return node.next
