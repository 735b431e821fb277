"""Quality inspection: the monthly sample (reproducible, per agent, recorded calls only), reviewers'
scores on a real PostgreSQL through `hotline qa`, and the per-agent report checked against figures
counted here from the generated legs."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from agi_app.centre.qa import AgentLeg, Month, QaRefused, check_score, recording_name, sample
from agi_app.cli.qa import qa
from agi_app.config import Settings
from tests.fast.conftest import query

SHANGHAI = ZoneInfo("Asia/Shanghai")
AGENTS = ("agent-1001", "agent-1002", "agent-1003")


def generated_legs(month: Month, count: int, *, seed: int = 7) -> list[AgentLeg]:
    """`count` answered legs spread over the month's local days; one in five was not recorded."""
    rng = random.Random(seed)
    start, end = month.bounds(SHANGHAI)
    span = int((end - start).total_seconds())
    legs = []
    for i in range(count):
        call_id = f"17{i:08d}.{rng.randrange(1000)}"
        queue = rng.choice(("general-zh", "cards", "loans"))
        recording = None if i % 5 == 4 else recording_name(call_id, queue)
        legs.append(AgentLeg(call_id, queue, AGENTS[rng.randrange(len(AGENTS))],
                             start + timedelta(seconds=rng.randrange(span)), rng.randrange(20, 600), recording))
    return legs


def keyed(legs: list[AgentLeg]) -> list[tuple[str, str]]:
    return [(leg.call_id, leg.queue) for leg in legs]


NOV = Month(2026, 11)


def test_the_same_month_draws_the_same_calls_whatever_order_they_come_in() -> None:
    legs = generated_legs(NOV, 120)
    shuffled = legs[:]
    random.Random(1).shuffle(shuffled)
    first = sample(legs, NOV, 4)
    assert keyed(sample(shuffled, NOV, 4)) == keyed(first)
    assert keyed(sample(legs, NOV, 4, seed="again")) != keyed(first), "--seed draws another sample"
    assert keyed(sample(legs, Month(2026, 12), 4)) != keyed(first), "each month has its own draw"


def test_each_agent_gets_n_recorded_calls_in_time_order() -> None:
    legs = generated_legs(NOV, 120)
    drawn = sample(legs, NOV, 4)
    assert all(leg.recording for leg in drawn), "only recorded calls can be reviewed"
    for agent in AGENTS:
        mine = [leg for leg in drawn if leg.agent == agent]
        recorded = [leg for leg in legs if leg.agent == agent and leg.recording]
        assert len(mine) == min(4, len(recorded)) == 4
        assert mine == sorted(mine, key=lambda leg: leg.answered_at)
    assert [leg.agent for leg in drawn] == sorted(leg.agent for leg in drawn), "grouped by agent"
    few = [leg for leg in legs if leg.agent == AGENTS[0] and leg.recording][:2]
    assert keyed(sample(few, NOV, 4)) == keyed(sorted(few, key=lambda leg: leg.answered_at)), "fewer than N: all"


def test_calls_added_later_do_not_reshuffle_the_rest_of_the_sample() -> None:
    """Drawing again after more calls came in keeps every earlier pick a later call did not outdraw."""
    legs = generated_legs(NOV, 150)
    early, later = legs[:100], legs
    before, after = set(keyed(sample(early, NOV, 3))), set(keyed(sample(later, NOV, 3)))
    assert {k for k in after if k in set(keyed(early))} <= before


def test_month_bounds_are_local_days_and_december_rolls_over() -> None:
    assert Month.parse("2026-12").bounds(SHANGHAI) == (datetime(2026, 12, 1, tzinfo=SHANGHAI),
                                                       datetime(2027, 1, 1, tzinfo=SHANGHAI))
    for bad in ("2026-13", "2026-1", "26-11", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            Month.parse(bad)


def test_recording_names_come_from_ids_only() -> None:
    assert recording_name("1732000000.7", "general-zh") == "qa/1732000000.7-general-zh"
    for call_id in ("../etc/passwd", "a/b", "x y", "", ".."):
        with pytest.raises(ValueError):
            recording_name(call_id, "cards")


def test_scores_are_one_to_five() -> None:
    assert [check_score(s) for s in range(1, 6)] == [1, 2, 3, 4, 5]
    for bad in (0, 6, -1, 100):
        with pytest.raises(QaRefused):
            check_score(bad)


# --- the CLI on a real database ------------------------------------------------------------------

def hotline(dsn: str, *args: str, recordings_dir: str = "", reviewer_env: str = "tester") -> Result:
    return CliRunner().invoke(qa, list(args), obj={"settings": Settings(dsn=dsn, recordings_dir=recordings_dir)},
                              env={"HOTLINE_ACTOR": reviewer_env})


def store_legs(dsn: str, legs: list[AgentLeg]) -> None:
    for leg in legs:
        query(dsn, "INSERT INTO queue_legs (call_id, queue, agent, answered_at, talk_s, recording, result)"
                   " VALUES ($1, $2, $3, $4, $5, $6, 'completed')",
              leg.call_id, leg.queue, leg.agent, leg.answered_at, leg.talk_s, leg.recording)


def test_sample_lists_the_recorded_calls_with_their_files(db: str) -> None:
    legs = generated_legs(NOV, 40)
    outside = AgentLeg("1700000000.1", "cards", AGENTS[0], datetime(2026, 10, 31, 15, 59, tzinfo=UTC), 30,
                       "qa/1700000000.1-cards")  # 23:59 on Oct 31st in Shanghai
    store_legs(db, [*legs, outside])
    result = hotline(db, "sample", "--month", "2026-11", "--per-agent", "2", "--json", recordings_dir="/spool/rec")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["call_id"], r["queue"]) for r in rows] == keyed(sample(legs, NOV, 2))
    assert len(rows) == 2 * len(AGENTS) and "1700000000.1" not in {r["call_id"] for r in rows}
    first = rows[0]
    assert first["recording"] == f"/spool/rec/qa/{first['call_id']}-{first['queue']}.wav"
    assert set(first) == {"call_id", "agent", "queue", "answered_at", "talk_s", "recording"}
    again = hotline(db, "sample", "--month", "2026-11", "--per-agent", "2", "--json", recordings_dir="/spool/rec")
    assert again.output == result.output, "the same sample every time"
    text = hotline(db, "sample", "--month", "2026-11", "--per-agent", "2")
    assert first["call_id"] in text.output and "recording: recording:qa/" in text.output
    assert hotline(db, "sample", "--month", "2026-13").exit_code == 1


def test_a_score_is_stored_per_call_and_agent_and_audited(db: str) -> None:
    leg = AgentLeg("1732000000.7", "cards", "agent-1002", datetime(2026, 11, 5, 3, tzinfo=UTC), 95,
                   "qa/1732000000.7-cards")
    unrecorded = AgentLeg("1732000000.8", "cards", "agent-1002", datetime(2026, 11, 5, 4, tzinfo=UTC), 40, None)
    store_legs(db, [leg, unrecorded])
    query(db, "INSERT INTO queue_legs (call_id, queue, result) VALUES ('1732000000.9', 'cards', 'abandoned')")
    done = hotline(db, "score", leg.call_id, "--score", "4", "--comment", "clear, polite", "--reviewer", "li.na")
    assert done.exit_code == 0, done.output
    assert "agent-1002" in done.output
    again = hotline(db, "score", leg.call_id, "--score", "2", "--comment", "missed the fee question",
                    "--reviewer", "li.na")
    assert again.exit_code == 0, again.output
    other = hotline(db, "score", leg.call_id, "--score", "5", "--comment", "fine")  # reviewer from $HOTLINE_ACTOR
    assert other.exit_code == 0, other.output
    rows = query(db, "SELECT call_id, queue, agent, reviewer, score, comment FROM qa_scores ORDER BY reviewer")
    assert [tuple(r) for r in rows] == [
        (leg.call_id, "cards", "agent-1002", "li.na", 2, "missed the fee question"),
        (leg.call_id, "cards", "agent-1002", "tester", 5, "fine")]
    audited = query(db, "SELECT actor, detail FROM audit_log WHERE action = 'qa.score' ORDER BY id")
    assert [(a["actor"], json.loads(a["detail"])["score"]) for a in audited] == [("li.na", 4), ("li.na", 2),
                                                                                ("tester", 5)]
    for refused, message in (((unrecorded.call_id,), "no recorded agent leg"),
                             (("1732000000.9",), "no recorded agent leg"),
                             (("nope",), "no recorded agent leg"),
                             ((leg.call_id, "--queue", "loans"), "in queue 'loans'")):
        result = hotline(db, "score", *refused, "--score", "3", "--comment", "x")
        assert result.exit_code == 1 and message in result.output, result.output
    for bad in ("0", "6"):
        result = hotline(db, "score", leg.call_id, "--score", bad, "--comment", "x")
        assert result.exit_code == 1 and "1 to 5" in result.output
    assert len(query(db, "SELECT 1 FROM qa_scores")) == 2, "nothing refused was stored"


def test_a_call_with_legs_in_two_queues_needs_the_queue(db: str) -> None:
    at = datetime(2026, 11, 5, 3, tzinfo=UTC)
    store_legs(db, [AgentLeg("1732000001.1", q, a, at, 60, recording_name("1732000001.1", q))
                    for q, a in (("cards", "agent-1001"), ("loans", "agent-1003"))])
    result = hotline(db, "score", "1732000001.1", "--score", "3", "--comment", "x")
    assert result.exit_code == 1 and "--queue" in result.output
    result = hotline(db, "score", "1732000001.1", "--queue", "loans", "--score", "3", "--comment", "x")
    assert result.exit_code == 0 and "agent-1003" in result.output


def test_the_report_sums_up_each_agent(db: str) -> None:
    legs = generated_legs(NOV, 60)
    store_legs(db, legs)
    drawn = sample(legs, NOV, 3)
    scored = {AGENTS[0]: [5, 3], AGENTS[1]: [4]}  # scores given to the first sampled calls of two agents
    for agent, scores in scored.items():
        mine = [leg for leg in drawn if leg.agent == agent]
        for leg, value in zip(mine, scores, strict=False):
            assert hotline(db, "score", leg.call_id, "--queue", leg.queue, "--score", str(value),
                           "--comment", "ok").exit_code == 0
    first_call = next(leg for leg in drawn if leg.agent == AGENTS[0])
    hotline(db, "score", first_call.call_id, "--queue", first_call.queue, "--score", "1", "--comment", "ok",
            "--reviewer", "zhao")  # a second reviewer on the same call: two scores, one call scored
    result = hotline(db, "report", "--month", "2026-11", "--per-agent", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["month"] == "2026-11"
    expected = []
    for agent in AGENTS:
        mine = [leg for leg in legs if leg.agent == agent]
        given = [*scored.get(agent, []), *([1] if agent == AGENTS[0] else [])]
        expected.append({"agent": agent, "calls": len(mine), "sampled": 3, "scored": len(scored.get(agent, [])),
                         "mean_score": round(sum(given) / len(given), 2) if given else None,
                         "talk_s": sum(leg.talk_s or 0 for leg in mine)})
    assert report["agents"] == expected
    assert hotline(db, "report", "--month", "2026-10", "--json").output.count('"agent"') == 0
    text = hotline(db, "report", "--month", "2026-11", "--per-agent", "3").output
    assert f"{AGENTS[0]}" in text and "mean=3.00" in text
