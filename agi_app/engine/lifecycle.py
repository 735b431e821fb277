"""A call's life, from its task's start to its outcome: the one place that decides when a call is
over, who owns it, and what its journey says happened.

`run_call` is the body of every call's task — live calls (`registry.py`), previews and
simulations (`admin/simulate.py`). The handler (the hotline's flow) runs; a call still ours when
it returns is hung up. The caller leaving cancels the task wherever it waits. A flow that fails,
or a call given up (shutdown, events lost), goes to the dialplan fallback, retried with backoff
within a budget. Then `outcome` turns how the call ended into its journey's outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from agi_app.budget import backoff_s
from agi_app.config import Settings
from agi_app.engine.channel import ChannelFailed, ChannelGone
from agi_app.engine.journey import JourneyRecord, Outcome
from agi_app.engine.session import CallSession, CallState
from agi_app.logs import log_event

log = logging.getLogger("hotline.lifecycle")

CallHandler = Callable[[CallSession], Awaitable[None]]
#: How a call's task ended: its flow ran to the end; the caller left; we gave it up and the
#: fallback took it; or it failed (an error, or a fallback that did not take it).
Ending = Literal["flow_ended", "caller_left", "handed_over", "failed"]
HandOver = Literal["done", "gone", "failed"]


@dataclass(frozen=True)
class Fallback:
    """Where calls go when we cannot serve them (shutting down, state lost, an error), and how
    hard we try: attempts with capped exponential backoff, none starting after `budget_s`."""

    context: str
    extension: str
    budget_s: float
    attempt_s: float  # one request's budget
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Fallback:
        return cls(settings.fallback_context, settings.fallback_extension, settings.fallback_budget_s,
                   settings.ari_budget_s)

    @property
    def handover_s(self) -> float:
        """The longest a hand-over takes: the last attempt may start just before the budget ends."""
        return self.budget_s + self.attempt_s + 1


async def run_call(session: CallSession, handler: CallHandler, fallback: Fallback, *,
                   why_given_up: Callable[[], str] = lambda: "shutdown") -> None:
    """Run one call to its end and close its journey. Must be the call's own task: cancelling it
    is how its owner ends the call — the caller left (`on_hangup` first), or the call is given up
    for the reason `why_given_up` tells and handed to the fallback."""
    journey = session.journey
    ending: Ending = "failed"
    try:
        try:
            await handler(session)
            if session.ours:  # the flow ended without handing the call off
                await session.hangup()
            ending = "flow_ended"
        except asyncio.CancelledError:  # the call's end, from its owner: handled here
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if session.state is CallState.CALLER_GONE:
                ending = "caller_left"
            else:  # not cut: it goes on in the dialplan; shielded, so a second cancel cannot cut it short
                handed = await asyncio.shield(to_fallback(session, fallback, why_given_up()))
                ending = "handed_over" if handed else "failed"
        except ChannelGone:
            session.on_hangup()
            ending = "caller_left"
        except Exception as exc:  # noqa: BLE001 - one call's bug must not take the server down
            session.log("call_error", level=logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200],
                        caller_gets="fallback")
            log.debug("call error", exc_info=True)
            await asyncio.shield(to_fallback(session, fallback, "error"))
    finally:
        journey.end(outcome(ending, journey.record))
        session.log("call_end", outcome=journey.record.outcome, duration_ms=journey.record.duration_ms,
                    path=">".join(journey.record.path))


def outcome(ending: Ending, record: JourneyRecord) -> Outcome:
    """The one rule from how a call ended (and what its journey holds) to its outcome."""
    served = any(result == "ok" for _, result in record.services)
    if ending == "flow_ended":  # handed to a destination, or finished (hang-up node, the flow's end)
        return "transferred" if record.transfer_target else "self_service" if served else "hangup"
    if ending == "caller_left":  # after a successful service that is containment, else abandonment
        return "self_service" if served else "abandoned"
    if ending == "handed_over":  # given up (shutdown, events lost) and taken by the dialplan
        return "transferred"
    return "error"


async def to_fallback(session: CallSession, fallback: Fallback, reason: str) -> bool:
    """The call, if still ours, to the dialplan fallback (its own transfer, retried); True once
    it is there, apologised to in the language the caller was served in, once known. One the
    fallback never took stays ours: its owner still owes it the hand-over."""
    if not session.ours:
        return False
    language = session.journey.record.language
    result = await hand_over(
        session.call_id,
        lambda: session.transfer(fallback.context, fallback.extension, f"fallback:{reason}", language=language),
        fallback)
    if result == "gone":
        session.on_hangup()
    return result == "done"


async def hand_over(call_id: str, attempt: Callable[[], Awaitable[None]], fallback: Fallback) -> HandOver:
    """Run `attempt` until it succeeds ("done"), the channel is gone ("gone": the caller left,
    nobody to hand over) or the budget is spent ("failed"); capped exponential backoff between."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + fallback.budget_s
    attempts = 0
    while True:
        attempts += 1
        try:
            await attempt()
            return "done"
        except ChannelGone:
            return "gone"
        except ChannelFailed as exc:
            error = str(exc)[:200]
        pause = backoff_s(attempts, first_s=fallback.first_backoff_s, cap_s=fallback.max_backoff_s)
        if loop.time() + pause > deadline:
            log_event(log, "fallback_failed", level=logging.ERROR, call=call_id, attempts=attempts,
                      error=error, retry="next_resync")
            return "failed"
        log_event(log, "fallback_retry", level=logging.WARNING, call=call_id, attempt=attempts,
                  error=error, retry_in_s=pause)
        await asyncio.sleep(pause)
