"""The satisfaction survey's rule, in one place: a score is one key from 1 to 5; anything else —
no key in time, another key, the caller hanging up — is no answer, with its reason and never the
key's value (a key the survey did not ask for may be a PIN typed in the wrong place).
"""

from __future__ import annotations

from typing import Literal

from agi_app.flows.model import Flow, FlowSet, HangupNode, Line, SurveyNode, UniversalKeys

#: Why a survey has no score: the caller hung up, pressed nothing in time, or a key outside 1–5.
NoAnswer = Literal["hangup", "timeout", "invalid_key"]

SCORE_KEYS = frozenset("12345")


def survey_score(digits: str) -> int | None:
    """The score `digits` give, or None if they are not one key from 1 to 5."""
    return int(digits) if digits in SCORE_KEYS else None


def no_answer_reason(digits: str) -> NoAnswer:
    """Why `digits` (not a score) are no answer: nothing pressed in time, or a stray key."""
    return "timeout" if not digits else "invalid_key"


#: The survey after an agent call: a small fixed flow, the same `survey` node and rule as in menus.
AFTER_AGENT_FLOW = "after_agent_survey"
AFTER_AGENT_LINE = "survey"


def after_agent_flows(language: str) -> FlowSet:
    """The flow the caller hears when they come back from the agent: rate the agent (1–5), thanks,
    goodbye. Fixed rather than in the menus: it must exist whatever a menu version holds."""
    survey = SurveyNode(id="survey", prompt={"*": "{{ sound('survey_intro') }}"},
                        thanks_prompt={"*": "{{ sound('survey_thanks') }}"}, next="goodbye")
    goodbye = HangupNode(id="goodbye", prompt={"*": "{{ sound('goodbye') }}"})
    flow = Flow(AFTER_AGENT_FLOW, survey.id, {survey.id: survey, goodbye.id: goodbye})
    line = Line(number=AFTER_AGENT_LINE, flow=AFTER_AGENT_FLOW, language=language)
    return FlowSet(lines={line.number: line}, default_line=line.number, destinations={},
                   flows={flow.name: flow}, keys=UniversalKeys(agent=None, back=None, repeat=None),
                   default_language=language)
