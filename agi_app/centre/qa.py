"""Quality inspection of agent calls: what is recorded, how the monthly sample is drawn, how a
reviewer scores, and what the monthly report says per agent.

Recording: the caller is told first (`recording_notice`: the app with its queue transfer's prompt,
while the call still counts as on its way into the queue; the dialplan fallback and line 95002
before their queue); the dialplan (`hotline-agents`, dialplan/extensions.conf.j2) then starts
MixMonitor with option `b` right before Queue(): audio is written only while the caller is bridged,
i.e. with the agent. Everything before (the IVR, secure input in
Stasis, the queue's hold music) and after (the survey) stays out of the file. The file is named from
ids only, `recording_name(call_id, group)`, under Asterisk's recording spool; the queue tracker
stores that name on the leg when app_queue connects an agent.

Sampling: each answered, recorded leg of the month gets a draw, the SHA-256 of (month, seed, call
id, queue); per agent the N smallest draws are the sample. The same month and seed give the same
sample whatever order the rows come in, and legs added later only enter it by drawing lower.

Scoring: 1 (poor) to 5 (excellent), the same scale as the callers' satisfaction survey.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

#: The subfolder of the recording spool that holds agent-call recordings.
RECORDINGS_FOLDER = "qa"
SCORE_MIN, SCORE_MAX = 1, 5
DEFAULT_PER_AGENT = 5
#: What an id may contain to become part of a file name (Asterisk unique ids, skill groups).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class QaRefused(ValueError):
    """A score or a request the rules refuse; the message says why."""


def recording_name(call_id: str, group: str) -> str:
    """The recording of a call's leg in a skill group, relative to the recording spool and without
    extension — the dialplan writes `<spool>/qa/${UNIQUEID}-<group>.wav`, the same rule."""
    for value in (call_id, group):
        if not _SAFE_ID.fullmatch(value) or ".." in value:
            raise ValueError(f"not an id usable in a file name: {value!r}")
    return f"{RECORDINGS_FOLDER}/{call_id}-{group}"


@dataclass(frozen=True)
class Month:
    """A calendar month, read as local days in the bank's time zone."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.fullmatch(text.strip())
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise ValueError(f"bad month {text!r} (expected YYYY-MM, e.g. 2026-11)")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def bounds(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """`[start, end)`: local midnight of the 1st to local midnight of the next month's 1st."""
        following = date(self.year + self.month // 12, self.month % 12 + 1, 1)
        return (datetime.combine(date(self.year, self.month, 1), time(0), zone),
                datetime.combine(following, time(0), zone))


@dataclass(frozen=True)
class AgentLeg:
    """One call an agent answered: what the reviewer needs to find and judge it."""

    call_id: str
    queue: str
    agent: str
    answered_at: datetime
    talk_s: int | None
    recording: str | None


def draw(month: Month, seed: str, leg: AgentLeg) -> bytes:
    """The leg's place in the month's random order: independent of every other leg."""
    return hashlib.sha256(f"{month}\0{seed}\0{leg.call_id}\0{leg.queue}".encode()).digest()


def sample(legs: Iterable[AgentLeg], month: Month, per_agent: int, *, seed: str = "") -> list[AgentLeg]:
    """Up to `per_agent` recorded legs per agent, drawn reproducibly; ordered by agent, then time."""
    if per_agent < 1:
        raise QaRefused("--per-agent must be at least 1")
    by_agent: dict[str, list[AgentLeg]] = defaultdict(list)
    for leg in legs:
        if leg.recording:
            by_agent[leg.agent].append(leg)
    chosen: list[AgentLeg] = []
    for agent in sorted(by_agent):
        picked = sorted(by_agent[agent], key=lambda leg: draw(month, seed, leg))[:per_agent]
        chosen += sorted(picked, key=lambda leg: (leg.answered_at, leg.call_id, leg.queue))
    return chosen


def check_score(score: int) -> int:
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise QaRefused(f"a score is {SCORE_MIN} to {SCORE_MAX}, not {score}")
    return score


@dataclass(frozen=True)
class Score:
    """One reviewer's score of one agent leg."""

    call_id: str
    queue: str
    agent: str
    score: int
    reviewer: str


@dataclass(frozen=True)
class AgentSummary:
    agent: str
    calls: int
    sampled: int
    scored: int
    mean_score: float | None
    talk_s: int

    def as_json(self) -> dict[str, object]:
        return {"agent": self.agent, "calls": self.calls, "sampled": self.sampled, "scored": self.scored,
                "mean_score": self.mean_score, "talk_s": self.talk_s}


def report(legs: Sequence[AgentLeg], sampled: Iterable[AgentLeg], scores: Iterable[Score]) -> list[AgentSummary]:
    """Per agent: answered calls, how many the sample holds, how many legs were scored, the mean of
    every score given, and the total talk time (seconds)."""
    calls: dict[str, int] = defaultdict(int)
    talk: dict[str, int] = defaultdict(int)
    for leg in legs:
        calls[leg.agent] += 1
        talk[leg.agent] += leg.talk_s or 0
    in_sample: dict[str, int] = defaultdict(int)
    for leg in sampled:
        in_sample[leg.agent] += 1
    given: dict[str, list[int]] = defaultdict(list)
    scored_legs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for s in scores:
        given[s.agent].append(s.score)
        scored_legs[s.agent].add((s.call_id, s.queue))
    return [AgentSummary(agent, calls[agent], in_sample[agent], len(scored_legs[agent]),
                         round(sum(given[agent]) / len(given[agent]), 2) if given[agent] else None, talk[agent])
            for agent in sorted(set(calls) | set(given))]
