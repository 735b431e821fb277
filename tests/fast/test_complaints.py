"""Complaint tickets on a real PostgreSQL: the `complaint` service files a dispatched ticket, and
`hotline complaints list|show|resolve` read and resolve it as the SPEC's interface says."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner, Result

from agi_app.caller_facts import UNKNOWN_CALLER, CallerFacts
from agi_app.centre.complaints import (
    RECORDING_VARIABLE,
    ComplaintRefused,
    NewComplaint,
    check_transition,
    register_complaint_services,
)
from agi_app.cli.complaints import complaints
from agi_app.config import Settings
from agi_app.db.pool import connection, create_pool
from agi_app.db.repositories.complaints import PgComplaints, file
from agi_app.flows.services import ServiceCall, ServiceOutcome, ServiceRegistry
from tests.fast.conftest import query


def hotline(dsn: str, *args: str, recordings_dir: str = "") -> Result:
    return CliRunner().invoke(complaints, list(args),
                              obj={"settings": Settings(dsn=dsn, recordings_dir=recordings_dir)},
                              env={"HOTLINE_ACTOR": "tester"})


def file_complaint(dsn: str, *, caller: str = "+86 138-0013-8000", call_id: str = "1700000000.1",
                   category: str = "fees", department: str = "retail_banking", recording: object = "complaint-ab12",
                   facts: CallerFacts = UNKNOWN_CALLER) -> ServiceOutcome:
    """The service exactly as a `process` node calls it, over a real pool."""
    async def main() -> ServiceOutcome:
        pool = await create_pool(dsn)
        try:
            registry = ServiceRegistry()
            register_complaint_services(registry, PgComplaints(lambda: pool), budget_s=2.0)
            service = registry.get("complaint")
            assert service is not None
            variables = {} if recording is None else {RECORDING_VARIABLE: recording}
            return await service(ServiceCall("complaint", call_id, caller, "95000", "zh", facts, variables,
                                             {"category": category, "department": department}))
        finally:
            await pool.close()

    return asyncio.run(main())


def test_status_moves_only_forward() -> None:
    check_transition("open", "dispatched")
    check_transition("dispatched", "resolved")
    check_transition("resolved", "called_back")
    for current, new in (("resolved", "resolved"), ("called_back", "resolved"), ("open", "called_back")):
        with pytest.raises(ComplaintRefused):
            check_transition(current, new)  # type: ignore[arg-type]


def test_a_complaint_needs_a_known_category_a_department_and_its_recording() -> None:
    NewComplaint("c", None, None, "card", "card_centre", "complaint-1")
    for category, department, recording in (("loans", "x", "r"), ("card", "Card Centre; DROP", "r"),
                                            ("card", "card_centre", "")):
        with pytest.raises(ComplaintRefused):
            NewComplaint("c", None, None, category, department, recording)


def test_the_service_files_a_ticket_dispatched_to_its_department(db: str) -> None:
    facts = CallerFacts(known=True, attributes={"customer_id": "C001"})
    outcome = file_complaint(db, facts=facts)
    assert outcome.result == "ok"
    ticket = outcome.variables["ticket"]
    assert ticket == "CMP-000001"
    row = query(db, "SELECT * FROM complaints")[0]
    assert (row["call_id"], row["customer_id"], row["callback_number"], row["category"], row["department"],
            row["status"], row["recording"]) == ("1700000000.1", "C001", "13800138000", "fees", "retail_banking",
                                                 "dispatched", "complaint-ab12")
    dispatches = query(db, "SELECT ticket_id, department, dispatched_by FROM complaint_dispatches")
    assert [tuple(d) for d in dispatches] == [(ticket, "retail_banking", "hotline")]


def test_no_recording_is_refused_and_a_bad_category_fails_and_neither_files_anything(db: str) -> None:
    assert file_complaint(db, recording=None).result == "refused"
    assert file_complaint(db, category="loans").result == "failed"
    assert query(db, "SELECT count(*) FROM complaints")[0][0] == 0


def test_list_json_is_newest_first_with_the_spec_fields_and_a_playable_path(db: str, tmp_path: Path) -> None:
    file_complaint(db, call_id="call-1", category="fees")
    file_complaint(db, call_id="call-2", category="card", department="card_centre", caller="anonymous",
                   recording="complaint-cd34")
    result = hotline(db, "list", "--json", recordings_dir=str(tmp_path))
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [t["call_id"] for t in listed] == ["call-2", "call-1"]
    newest = listed[0]
    assert {k: newest[k] for k in ("ticket_id", "customer_id", "callback_number", "category", "department",
                                   "status")} == {
        "ticket_id": "CMP-000002", "customer_id": None, "callback_number": None, "category": "card",
        "department": "card_centre", "status": "dispatched"}
    assert newest["recording"] == str(tmp_path / "complaint-cd34.wav")
    assert newest["created_at"]
    assert json.loads(hotline(db, "list", "--json", "--status", "resolved").output) == []
    without_dir = json.loads(hotline(db, "list", "--json").output)
    assert without_dir[0]["recording"] == "recording:complaint-cd34"


def test_show_prints_the_recording_path_and_the_dispatch_history(db: str, tmp_path: Path) -> None:
    file_complaint(db)
    shown = hotline(db, "show", "CMP-000001", recordings_dir=str(tmp_path))
    assert shown.exit_code == 0, shown.output
    assert f"recording: {tmp_path / 'complaint-ab12.wav'}" in shown.output
    assert "to retail_banking  by hotline" in shown.output
    as_json = json.loads(hotline(db, "show", "CMP-000001", "--json").output)
    assert [d["department"] for d in as_json["dispatches"]] == ["retail_banking"]
    missing = hotline(db, "show", "CMP-999999")
    assert missing.exit_code == 1
    assert "no complaint 'CMP-999999'" in missing.output


def test_resolve_keeps_the_note_audits_it_and_refuses_a_second_time(db: str) -> None:
    file_complaint(db)
    result = hotline(db, "resolve", "CMP-000001", "--note", "Fee refunded", "--actor", "alice")
    assert result.exit_code == 0, result.output
    ticket = json.loads(hotline(db, "show", "CMP-000001", "--json").output)
    assert (ticket["status"], ticket["resolution"], ticket["resolved_by"]) == ("resolved", "Fee refunded", "alice")
    assert ticket["resolved_at"]
    audit = query(db, "SELECT actor, action, detail FROM audit_log")
    assert [(a["actor"], a["action"], json.loads(a["detail"])) for a in audit] == [
        ("alice", "complaints.resolve", {"ticket_id": "CMP-000001", "note": "Fee refunded", "callback_id": 1})]
    again = hotline(db, "resolve", "CMP-000001", "--note", "again")
    assert again.exit_code == 1
    assert "a resolved ticket cannot become resolved" in again.output
    assert hotline(db, "resolve", "CMP-000404", "--note", "x").exit_code == 1
    assert hotline(db, "resolve", "CMP-000001", "--note", "  ").exit_code == 1


def test_resolve_names_the_default_actor(db: str) -> None:
    file_complaint(db)
    assert hotline(db, "resolve", "CMP-000001", "--note", "done").exit_code == 0
    assert query(db, "SELECT resolved_by FROM complaints")[0][0] == "tester"


async def test_the_store_files_within_one_transaction(dsn: str) -> None:
    """A dispatch that cannot be written leaves no ticket behind (one transaction)."""
    async with connection(dsn) as conn:
        await conn.execute("ALTER TABLE complaint_dispatches ADD CONSTRAINT no_dispatch CHECK (false)")
        try:
            with pytest.raises(asyncpg.CheckViolationError, match="no_dispatch"):
                await file(conn, NewComplaint("c", None, None, "other", "customer_service", "complaint-x"))
            assert await conn.fetchval("SELECT count(*) FROM complaints") == 0
        finally:
            await conn.execute("ALTER TABLE complaint_dispatches DROP CONSTRAINT no_dispatch")


def test_resolving_books_the_callers_callback_and_its_result_lands_on_the_ticket(db: str) -> None:
    file_complaint(db, call_id="call-7", facts=CallerFacts(known=True, attributes={"customer_id": "C001"}))
    result = hotline(db, "resolve", "CMP-000001", "--note", "Fee refunded")
    assert "callback 1 booked to 13800138000" in result.output
    [callback] = query(db, "SELECT callback_id, call_id, customer_id, number, queue, status FROM callbacks")
    assert tuple(callback) == (1, "call-7", "C001", "13800138000", "complaints", "waiting")
    ticket = json.loads(hotline(db, "show", "CMP-000001", "--json").output)
    assert (ticket["callback_id"], ticket["callback_result"]) == (1, None)
    # The callback machinery moves it on (retries come back to waiting: no result yet) ...
    query(db, "UPDATE callbacks SET status = 'dialling' WHERE callback_id = 1")
    assert query(db, "SELECT status, callback_result FROM complaints")[0] == ("resolved", None)
    # ... and its end is the ticket's callback result; reaching the caller makes it called_back.
    query(db, "UPDATE callbacks SET status = 'completed' WHERE callback_id = 1")
    assert tuple(query(db, "SELECT status, callback_result FROM complaints")[0]) == ("called_back", "completed")
    listed = json.loads(hotline(db, "list", "--json", "--status", "called_back").output)
    assert [t["ticket_id"] for t in listed] == ["CMP-000001"]


def test_a_callback_that_never_reaches_the_caller_leaves_the_ticket_resolved_with_why(db: str) -> None:
    file_complaint(db)
    hotline(db, "resolve", "CMP-000001", "--note", "done")
    query(db, "UPDATE callbacks SET status = 'no_answer' WHERE callback_id = 1")
    assert tuple(query(db, "SELECT status, callback_result FROM complaints")[0]) == ("resolved", "no_answer")


@pytest.mark.parametrize("caller", ["anonymous", "+44 20 7946 0000"])
def test_a_ticket_with_no_dialable_number_is_resolved_without_a_callback(db: str, caller: str) -> None:
    file_complaint(db, caller=caller)
    result = hotline(db, "resolve", "CMP-000001", "--note", "done")
    assert result.exit_code == 0 and "no number to call back" in result.output
    assert query(db, "SELECT count(*) FROM callbacks")[0][0] == 0
    assert tuple(query(db, "SELECT status, callback_id, callback_result FROM complaints")[0]) == (
        "resolved", None, "no_number")


def test_a_ticket_passed_on_to_another_department_keeps_its_dispatch_history(db: str) -> None:
    file_complaint(db)
    result = hotline(db, "dispatch", "CMP-000001", "--to", "card_centre", "--note", "about a card fee",
                     "--actor", "bob")
    assert result.exit_code == 0 and "dispatched to card_centre" in result.output
    ticket = json.loads(hotline(db, "show", "CMP-000001", "--json").output)
    assert (ticket["status"], ticket["department"]) == ("dispatched", "card_centre")
    assert [(d["department"], d["dispatched_by"], d["note"]) for d in ticket["dispatches"]] == [
        ("retail_banking", "hotline", "filed by the caller"), ("card_centre", "bob", "about a card fee")]
    assert query(db, "SELECT action FROM audit_log")[0][0] == "complaints.dispatch"
    assert hotline(db, "dispatch", "CMP-000001", "--to", "Card Centre").exit_code == 1
    hotline(db, "resolve", "CMP-000001", "--note", "refunded")
    refused = hotline(db, "dispatch", "CMP-000001", "--to", "retail_banking")
    assert refused.exit_code == 1 and "a resolved ticket cannot become dispatched" in refused.output
