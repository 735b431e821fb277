"""The survey after an agent call: the caller comes back from the queue when the agent hangs up,
and the dialplan (hotline-agent-done) puts the same channel into our application again with
arguments `survey,<original call id>,<skill group>,<agent member name>,<language>`.

`SurveyRequest.parse` is the one check of those arguments (the router refuses anything else).
The call that follows is a session of its own in the call registry, running the fixed survey flow
(`flows.survey.after_agent_flows`); its journey is not a second call — `AfterAgentSink` keeps only
its survey result, for the original call, the group and the agent. If the survey cannot be served
(the app at capacity or draining, an error) the call goes to `SURVEY_END`, the dialplan's goodbye:
never back into a queue, never silence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agi_app.engine.journey import SELF_SERVICE, JourneyRecord, JourneySink, QueueLeg, SurveyContext
from agi_app.flows.services import ServiceResult
from agi_app.flows.survey import NoAnswer

#: The first Stasis argument of a survey re-entry (a call's first argument is the dialled number).
SURVEY_ARG = "survey"
#: Where a survey call goes when we cannot serve it: the dialplan says goodbye and hangs up.
SURVEY_END = ("hotline-agent-done", "survey-end")

_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # Asterisk's UNIQUEID / the ARI channel id
_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")  # skill groups and queue member names (ami.queues)
_LANGUAGE = re.compile(r"[a-z]{2}")


class InvalidSurveyRequest(ValueError):
    """The dialplan's survey arguments are not what hotline-agent-done sends."""


@dataclass(frozen=True)
class SurveyRequest:
    """A caller back from agent `agent` of skill group `group`, to rate them; `call_id` is the
    original call (its `calls` row, when the app served it)."""

    call_id: str
    group: str
    agent: str
    language: str

    @classmethod
    def parse(cls, args: Sequence[str]) -> SurveyRequest:
        """The request in Stasis arguments `survey,<call id>,<group>,<agent>,<language>`."""
        if len(args) != 5 or args[0] != SURVEY_ARG:
            raise InvalidSurveyRequest(f"expected 5 arguments starting with {SURVEY_ARG!r}, got {len(args)}")
        _, call_id, group, agent, language = args
        for what, value, shape in (("call id", call_id, _CALL_ID), ("group", group, _NAME),
                                   ("agent", agent, _NAME), ("language", language, _LANGUAGE)):
            if not shape.fullmatch(value):
                raise InvalidSurveyRequest(f"invalid {what}")  # never the value: it came from the channel
        return cls(call_id, group, agent, language)

    @property
    def context(self) -> SurveyContext:
        return SurveyContext("after_agent", queue=self.group, agent=self.agent)


class AfterAgentSink:
    """The journey sink of a survey call: the survey result goes to `inner` for the original call,
    rating the agent; the rest of its journey (its start and end, nodes, inputs) is not a call and
    is dropped — the original call's row and outcome stay as they were."""

    def __init__(self, inner: JourneySink, request: SurveyRequest) -> None:
        self._inner = inner
        self._request = request

    def survey_answer(self, call_id: str, node_id: str, score: int | None, *, no_answer: NoAnswer | None = None,
                      context: SurveyContext = SELF_SERVICE) -> None:
        self._inner.survey_answer(self._request.call_id, node_id, score, no_answer=no_answer,
                                  context=self._request.context)

    def call_started(self, record: JourneyRecord) -> None:
        pass

    def call_identified(self, record: JourneyRecord) -> None:
        pass

    def node_entered(self, call_id: str, seq: int, node_id: str, at: datetime) -> None:
        pass

    def node_input(self, call_id: str, seq: int, node_seq: int, masked_input: str, result: str) -> None:
        pass

    def service_reached(self, call_id: str, seq: int, service: str, result: ServiceResult) -> None:
        pass

    def queue_leg(self, call_id: str, leg: QueueLeg) -> None:
        pass

    def call_ended(self, record: JourneyRecord, ended_at: datetime) -> None:
        pass
