"""The grant lifecycle over HTTP on PostgreSQL: every transition, every role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select

from servicekit.outbox import OUTBOX

pytestmark = pytest.mark.postgres

AGENCY = "MOST"
INSTITUTION = "HUST"


class World:
    """Tokens and helpers for one scenario's cast."""

    def __init__(self, client, tokens):
        self.c = client
        self.t = tokens
        self.pm = tokens.headers("pm-1", "program_manager", org=AGENCY)
        self.pm_other = tokens.headers("pm-2", "program_manager", org="DOST-HN")
        self.lead = tokens.headers("r-lead", "researcher", org=INSTITUTION)
        self.member = tokens.headers("r-member", "researcher", org=INSTITUTION)
        self.outsider = tokens.headers("r-out", "researcher", org="VNU")
        self.office = tokens.headers("off-1", "institution", org=INSTITUTION)
        self.other_office = tokens.headers("off-2", "institution", org="VNU")
        self.rev1 = tokens.headers("rev-1", "reviewer", org="VAST")
        self.rev2 = tokens.headers("rev-2", "reviewer", org="NAFOSTED")
        self.rev_conflicted = tokens.headers("rev-3", "reviewer", org=INSTITUTION)
        self.auditor = tokens.headers("aud-1", "auditor", org="SAV")
        self.finance = tokens.headers("fin-1", "finance", org="MOF")

    def open_call(self, budget=3_000_000_000, max_award=1_000_000_001, min_reviews=2) -> dict:
        call = self.c.post("/v1/calls", headers=self.pm, json={
            "title": "Call", "budget_vnd": budget, "max_award_vnd": max_award,
            "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z",
            "min_reviews": min_reviews}).json()
        assert self.c.post(f"/v1/calls/{call['id']}/open", headers=self.pm).status_code == 200
        return call

    def application_body(self, call_id: str, **overrides) -> dict:
        body = {
            "call_id": call_id, "title": "Rice yield forecasting", "abstract": "ML",
            "institution_id": INSTITUTION, "requested_vnd": 1_000_000_001,
            "risk_level": "high",
            "team": [
                {"researcher_id": "r-lead", "name": "Lead", "role": "PI",
                 "contribution_bp": 7000},
                {"researcher_id": "r-member", "name": "Member", "role": "member",
                 "contribution_bp": 3000},
            ],
            "milestones": [
                {"title": f"M{i}", "deliverable": f"D{i}", "verification": "demo",
                 "due_date": f"2027-0{i + 1}-15", "tranche_bp": bp}
                for i, bp in enumerate([3333, 3333, 3334])
            ],
        }
        body.update(overrides)
        return body

    def draft(self, call_id: str, **overrides) -> dict:
        r = self.c.post("/v1/applications", headers=self.lead,
                        json=self.application_body(call_id, **overrides))
        assert r.status_code == 201, r.text
        return r.json()

    def submitted(self, call_id: str) -> dict:
        app = self.draft(call_id)
        r = self.c.post(f"/v1/applications/{app['id']}/submit", headers=self.lead)
        assert r.status_code == 200, r.text
        return r.json()

    def review(self, app_id: str, who: dict, recommendation="fund"):
        return self.c.post(f"/v1/applications/{app_id}/reviews", headers=who, json={
            "scores": {"novelty": 5, "feasibility": 4}, "recommendation": recommendation,
            "comment": "solid", "conflict_of_interest": False})

    def reviewed(self, call_id: str) -> dict:
        app = self.submitted(call_id)
        assert self.review(app["id"], self.rev1).status_code == 201
        assert self.review(app["id"], self.rev2).status_code == 201
        return app

    def grant(self, awarded=1_000_000_001) -> dict:
        call = self.open_call()
        app = self.reviewed(call["id"])
        r = self.c.post(f"/v1/applications/{app['id']}/decision", headers=self.pm,
                        json={"decision": "approve", "awarded_vnd": awarded})
        assert r.status_code == 200, r.text
        return self.c.get(f"/v1/grants/{r.json()['grant_id']}", headers=self.pm).json()

    def report(self, grant: dict, seq: int):
        m = grant["milestones"][seq - 1]
        return self.c.post(f"/v1/grants/{grant['id']}/milestones/{m['id']}/report",
                           headers=self.lead, json={
                               "summary": "delivered",
                               "evidence": [{"kind": "dataset", "ref": "doi:10.1/x"}]})

    def accept(self, grant: dict, seq: int):
        m = grant["milestones"][seq - 1]
        return self.c.post(f"/v1/grants/{grant['id']}/milestones/{m['id']}/accept",
                           headers=self.pm)


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


def events_for(url: str, key: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.event_type).where(OUTBOX.c.key == key)
                            .order_by(OUTBOX.c.id)).scalars().all()
    engine.dispose()
    return [r.removeprefix("vn.gov.most.grants.").removesuffix(".v1") for r in rows]


# --- applications ----------------------------------------------------------------------

def test_a_researcher_drafts_and_submits_while_the_call_is_open(w, grants_db):
    call = w.open_call()
    app = w.draft(call["id"])
    assert app["status"] == "draft" and app["agency_id"] == AGENCY
    r = w.c.post(f"/v1/applications/{app['id']}/submit", headers=w.lead)
    assert r.json()["status"] == "submitted"
    assert events_for(grants_db, app["id"]) == ["application.submitted"]


def test_submitting_twice_is_409(w):
    app = w.submitted(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/submit", headers=w.lead)
    assert r.status_code == 409


def test_submitting_after_the_call_closed_is_409(w, clock):
    call = w.open_call()
    app = w.draft(call["id"])
    clock.advance(timedelta(days=365))
    r = w.c.post(f"/v1/applications/{app['id']}/submit", headers=w.lead)
    assert r.status_code == 409 and "not open for submissions" in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["team"][0].update(contribution_bp=6999), "contribution_bp"),
        (lambda b: b["milestones"][0].update(tranche_bp=3332), "tranche_bp"),
        (lambda b: b["team"][1].update(researcher_id="r-lead"), "team"),
        (lambda b: b.update(requested_vnd=1_000_000_002), "requested_vnd"),
        (lambda b: b.update(requested_vnd=-1), "requested_vnd"),
        (lambda b: b["milestones"][0].update(due_date="2026-11-23"), "due_date"),
        (lambda b: b.update(risk_level="extreme"), "risk_level"),
    ],
)
def test_bad_applications_are_422_naming_the_field_and_write_nothing(w, change, field):
    call = w.open_call()
    body = w.application_body(call["id"])
    change(body)
    r = w.c.post("/v1/applications", headers=w.lead, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    locs = [str(p) for e in r.json().get("errors", []) for p in e["loc"]]
    assert field in locs or field in r.json()["detail"]
    mine = w.c.get("/v1/applications", headers=w.lead, params={"call_id": call["id"]})
    assert mine.json()["items"] == []


def test_an_application_to_an_unknown_call_is_404(w):
    r = w.c.post("/v1/applications", headers=w.lead,
                 json=w.application_body(str(uuid.uuid4())))
    assert r.status_code == 404


def test_a_draft_is_seen_by_its_team_and_institution_only(w):
    app = w.draft(w.open_call()["id"])
    path = f"/v1/applications/{app['id']}"
    for who in (w.lead, w.member, w.office, w.pm, w.auditor):
        assert w.c.get(path, headers=who).status_code == 200
    for who in (w.outsider, w.other_office, w.rev1, w.pm_other):
        assert w.c.get(path, headers=who).status_code == 404


def test_a_reviewer_sees_submitted_applications_except_conflicted_ones(w):
    call = w.open_call()
    app = w.submitted(call["id"])
    assert w.c.get(f"/v1/applications/{app['id']}", headers=w.rev1).status_code == 200
    assert w.c.get(f"/v1/applications/{app['id']}",
                   headers=w.rev_conflicted).status_code == 404
    listed = w.c.get(f"/v1/calls/{call['id']}/applications", headers=w.rev1).json()["items"]
    assert [a["id"] for a in listed] == [app["id"]]
    hidden = w.c.get(f"/v1/calls/{call['id']}/applications",
                     headers=w.rev_conflicted).json()["items"]
    assert hidden == []


def test_my_applications_lists_only_mine(w):
    call = w.open_call()
    app = w.draft(call["id"])
    mine = w.c.get("/v1/applications", headers=w.member).json()["items"]
    assert app["id"] in [a["id"] for a in mine]
    assert w.c.get("/v1/applications", headers=w.outsider).json()["items"] == []


# --- reviews -----------------------------------------------------------------------------

def test_reviewing_a_draft_is_refused(w):
    app = w.draft(w.open_call()["id"])
    assert w.review(app["id"], w.rev1).status_code == 404


@pytest.mark.parametrize("reviewer", ["rev_conflicted", "team_member_reviewer"])
def test_conflicted_reviews_are_409_with_the_reason(w, tokens, reviewer):
    app = w.submitted(w.open_call()["id"])
    who = (w.rev_conflicted if reviewer == "rev_conflicted"
           else tokens.headers("r-member", "reviewer", org="VAST"))
    r = w.review(app["id"], who)
    assert r.status_code == 409
    assert "conflict of interest" in r.json()["detail"]


def test_a_declared_conflict_is_refused(w):
    app = w.submitted(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/reviews", headers=w.rev1, json={
        "scores": {"novelty": 3}, "recommendation": "revise", "comment": "",
        "conflict_of_interest": True})
    assert r.status_code == 409


def test_one_review_per_reviewer(w):
    app = w.submitted(w.open_call()["id"])
    assert w.review(app["id"], w.rev1).status_code == 201
    assert w.review(app["id"], w.rev1).status_code == 409


def test_scores_must_be_1_to_5(w):
    app = w.submitted(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/reviews", headers=w.rev1, json={
        "scores": {"novelty": 6}, "recommendation": "fund", "comment": ""})
    assert r.status_code == 422


def test_reviewers_do_not_see_each_others_reviews_before_the_decision(w):
    app = w.reviewed(w.open_call()["id"])
    own = w.c.get(f"/v1/applications/{app['id']}/reviews", headers=w.rev1).json()["items"]
    assert [r["reviewer_id"] for r in own] == ["rev-1"]
    everyone = w.c.get(f"/v1/applications/{app['id']}/reviews", headers=w.pm).json()["items"]
    assert {r["reviewer_id"] for r in everyone} == {"rev-1", "rev-2"}
    w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
             json={"decision": "reject", "reason": "out of scope"})
    after = w.c.get(f"/v1/applications/{app['id']}/reviews", headers=w.rev1).json()["items"]
    assert len(after) == 2
    path = f"/v1/applications/{app['id']}/reviews"
    first = w.c.get(path, headers=w.pm, params={"limit": 1}).json()
    second = w.c.get(path, headers=w.pm,
                     params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert second["next_cursor"] is None
    assert [r["id"] for r in first["items"] + second["items"]] == [r["id"] for r in after]


# --- decisions ---------------------------------------------------------------------------

def test_deciding_without_enough_reviews_is_409(w):
    app = w.submitted(w.open_call()["id"])
    w.review(app["id"], w.rev1)
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
                 json={"decision": "approve", "awarded_vnd": 1})
    assert r.status_code == 409 and "at least 2 reviews" in r.json()["detail"]


@pytest.mark.parametrize("awarded", [1_000_000_002, 0, -5])
def test_awards_over_the_request_or_not_positive_are_422(w, awarded):
    app = w.reviewed(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
                 json={"decision": "approve", "awarded_vnd": awarded})
    assert r.status_code == 422


def test_an_award_over_the_remaining_budget_is_refused(w):
    call = w.open_call(budget=1_500_000_000)
    first = w.reviewed(call["id"])
    second = w.reviewed(call["id"])
    ok = w.c.post(f"/v1/applications/{first['id']}/decision", headers=w.pm,
                  json={"decision": "approve", "awarded_vnd": 1_000_000_000})
    assert ok.status_code == 200
    r = w.c.post(f"/v1/applications/{second['id']}/decision", headers=w.pm,
                 json={"decision": "approve", "awarded_vnd": 500_000_001})
    assert r.status_code == 409 and "remaining budget" in r.json()["detail"]
    public = w.c.get(f"/v1/calls/{call['id']}").json()
    assert public["remaining_budget_vnd"] == 500_000_000


def test_approval_creates_a_grant_with_the_exact_tranche_schedule(w, grants_db):
    grant = w.grant()
    assert [m["tranche_vnd"] for m in grant["milestones"]] == [333_300_000, 333_300_000,
                                                               333_400_001]
    assert grant["status"] == "active" and grant["disbursed_vnd"] == 0
    assert grant["institution_id"] == INSTITUTION and grant["agency_id"] == AGENCY
    assert events_for(grants_db, grant["id"]) == ["grant.awarded"]
    assert events_for(grants_db, grant["application_id"])[-1] == "application.decided"


def test_a_rejection_needs_a_reason(w):
    app = w.reviewed(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
                 json={"decision": "reject"})
    assert r.status_code == 422
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
                 json={"decision": "reject", "reason": "weak plan"})
    assert r.json()["status"] == "rejected" and r.json().get("grant_id") is None


def test_another_agency_cannot_decide(w):
    app = w.reviewed(w.open_call()["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm_other,
                 json={"decision": "reject", "reason": "x"})
    assert r.status_code == 404


# --- grants ------------------------------------------------------------------------------

def test_grant_visibility_team_institution_ministry_only(w):
    grant = w.grant()
    path = f"/v1/grants/{grant['id']}"
    for who in (w.lead, w.member, w.office, w.pm, w.pm_other, w.rev1, w.auditor):
        assert w.c.get(path, headers=who).status_code == 200
    for who in (w.outsider, w.other_office):
        assert w.c.get(path, headers=who).status_code == 404
    assert w.c.get(path).status_code == 401


def test_another_agency_reads_a_grant_but_does_not_act_on_it(w):
    grant = w.grant()
    w.report(grant, 1)
    path = f"/v1/grants/{grant['id']}"
    attempts = [
        (f"{path}/milestones/{grant['milestones'][0]['id']}/accept", {}),
        (f"{path}/breaches", {"kind": "other", "description": "x"}),
        (f"{path}/close", {"outcome": "completed", "justification": "x"}),
    ]
    for url, body in attempts:
        r = w.c.post(url, headers=w.pm_other, json=body)
        assert r.status_code == 403, (url, r.text)
    after = w.c.get(path, headers=w.pm).json()
    assert (after["status"], after["disbursed_vnd"], after["breaches"]) == ("active", 0, [])
    # Lists stay within the agency (its portfolio is not another agency's to rebuild).
    listed = w.c.get("/v1/grants", headers=w.pm_other, params={"limit": 200}).json()
    assert grant["id"] not in [g["id"] for g in listed["items"]]
    listed = w.c.get("/v1/grants", headers=w.pm, params={"call_id": grant["call_id"]}).json()
    assert grant["id"] in [g["id"] for g in listed["items"]]


def test_accepting_a_reported_milestone_releases_its_tranche(w, grants_db):
    grant = w.grant()
    assert w.accept(grant, 1).status_code == 409  # not reported yet
    assert w.report(grant, 1).status_code == 200
    r = w.accept(grant, 1)
    assert r.status_code == 200
    assert r.json()["disbursed_vnd"] == 333_300_000
    assert r.json()["milestones"][0]["status"] == "accepted"
    assert events_for(grants_db, grant["id"]) == ["grant.awarded", "tranche.released"]


def test_only_the_team_reports(w):
    grant = w.grant()
    m = grant["milestones"][0]
    r = w.c.post(f"/v1/grants/{grant['id']}/milestones/{m['id']}/report",
                 headers=w.outsider,
                 json={"summary": "x", "evidence": [{"kind": "url", "ref": "https://x"}]})
    assert r.status_code == 404


def test_a_report_has_no_place_for_invoices(w):
    grant = w.grant()
    m = grant["milestones"][0]
    r = w.c.post(f"/v1/grants/{grant['id']}/milestones/{m['id']}/report", headers=w.lead,
                 json={"summary": "x", "evidence": [{"kind": "invoice", "ref": "INV-1"}]})
    assert r.status_code == 422


def test_a_rejected_report_needs_a_reason_and_can_be_reported_again(w):
    grant = w.grant()
    w.report(grant, 1)
    m = grant["milestones"][0]
    path = f"/v1/grants/{grant['id']}/milestones/{m['id']}/reject"
    assert w.c.post(path, headers=w.pm, json={}).status_code == 422
    r = w.c.post(path, headers=w.pm, json={"reason": "the dataset link is dead"})
    assert r.json()["milestones"][0]["status"] == "rejected"
    assert w.report(grant, 1).status_code == 200


def test_a_milestone_is_overdue_once_its_due_date_has_passed_in_hanoi(w, clock):
    grant = w.grant()  # M1 due 2027-01-15
    clock.set(datetime(2027, 1, 15, 16, 59, tzinfo=UTC))  # 23:59 on the 15th in Hanoi
    read = w.c.get(f"/v1/grants/{grant['id']}", headers=w.lead).json()
    assert read["milestones"][0]["overdue"] is False
    clock.set(datetime(2027, 1, 15, 17, 30, tzinfo=UTC))  # still the 15th in UTC
    read = w.c.get(f"/v1/grants/{grant['id']}", headers=w.lead).json()
    assert read["milestones"][0]["overdue"] is True  # already the 16th in Hanoi


def test_an_overdue_milestone_is_flagged_and_can_be_rescheduled(w, clock):
    grant = w.grant()
    clock.advance(timedelta(days=120))  # past M1's 2027-01-15
    read = w.c.get(f"/v1/grants/{grant['id']}", headers=w.lead).json()
    assert read["milestones"][0]["overdue"] is True
    assert read["status"] == "active"  # never penalised automatically
    m = grant["milestones"][0]
    r = w.c.post(f"/v1/grants/{grant['id']}/milestones/{m['id']}/reschedule", headers=w.pm,
                 json={"due_date": "2027-06-30", "reason": "harvest failed"})
    assert r.status_code == 200
    assert r.json()["milestones"][0]["overdue"] is False
    trail = w.c.get(f"/v1/grants/{grant['id']}/history", headers=w.auditor).json()["items"]
    resched = [e for e in trail if e["action"] == "reschedule_milestone"][0]
    assert resched["data"]["from_due_date"] == "2027-01-15"
    assert resched["reason"] == "harvest failed"


def test_registering_a_result_emits_result_registered(w, grants_db):
    grant = w.grant()
    r = w.c.post(f"/v1/grants/{grant['id']}/results", headers=w.member, json={
        "kind": "patent", "title": "Yield model",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 7000},
                    {"researcher_id": "r-member", "name": "Member", "contribution_bp": 3000}]})
    assert r.status_code == 201, r.text
    assert r.json()["institution_id"] == INSTITUTION
    assert events_for(grants_db, grant["id"])[-1] == "result.registered"
    second = w.c.post(f"/v1/grants/{grant['id']}/results", headers=w.member, json={
        "kind": "dataset", "title": "Field data",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 10000}]})
    path = f"/v1/grants/{grant['id']}/results"
    page = w.c.get(path, headers=w.pm, params={"limit": 1}).json()
    rest = w.c.get(path, headers=w.pm, params={"limit": 1, "cursor": page["next_cursor"]}
                   ).json()
    paged = [x["id"] for x in page["items"] + rest["items"]]
    assert paged == sorted([r.json()["id"], second.json()["id"]])  # oldest first; same
    assert rest["next_cursor"] is None                              # time: by id
    bad = w.c.post(f"/v1/grants/{grant['id']}/results", headers=w.member, json={
        "kind": "patent", "title": "x",
        "authors": [{"researcher_id": "r-lead", "name": "Lead", "contribution_bp": 9000}]})
    assert bad.status_code == 422


def test_failed_in_good_faith_refunds_nothing_and_exempts_the_team(w, grants_db):
    grant = w.grant()
    w.report(grant, 1)
    w.accept(grant, 1)
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "failed_in_good_faith", "justification": "the approach did not work",
        "procedures_followed": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["outcome"], body["refund_due_vnd"], body["liability"]) == (
        "failed_in_good_faith", 0, "exempt")
    assert body["cancelled_vnd"] == 333_300_000 + 333_400_001
    assert [m["status"] for m in body["milestones"]] == ["accepted", "cancelled", "cancelled"]
    assert events_for(grants_db, grant["id"])[-1] == "grant.closed"


def test_a_recorded_breach_bars_the_good_faith_outcome(w):
    grant = w.grant()
    r = w.c.post(f"/v1/grants/{grant['id']}/breaches", headers=w.pm,
                 json={"kind": "misuse", "description": "bought a car"})
    assert r.status_code == 201
    assert r.json()["grant_id"] == grant["id"]
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "failed_in_good_faith", "justification": "x", "procedures_followed": True})
    assert r.status_code == 409 and "breach" in r.json()["detail"]
    still = w.c.get(f"/v1/grants/{grant['id']}", headers=w.pm).json()
    assert still["status"] == "active"


def test_good_faith_needs_the_attestation(w):
    grant = w.grant()
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "failed_in_good_faith", "justification": "x"})
    assert r.status_code == 422 and "procedures_followed" in r.text


def test_terminated_for_breach_sets_a_refund_within_what_was_disbursed(w):
    grant = w.grant()
    w.report(grant, 1)
    w.accept(grant, 1)
    over = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "terminated_for_breach", "justification": "j", "breach": "fraud",
        "refund_vnd": 333_300_001})
    assert over.status_code == 422
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "terminated_for_breach", "justification": "j",
        "breach": "fabricated results", "refund_vnd": 200_000_000})
    body = r.json()
    assert (body["refund_due_vnd"], body["liability"]) == (200_000_000, "not_exempt")


def test_partially_completed_releases_part_of_a_reported_milestone(w, grants_db):
    grant = w.grant()
    w.report(grant, 1)
    w.accept(grant, 1)
    w.report(grant, 2)
    m2 = grant["milestones"][1]
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
        "outcome": "partially_completed", "justification": "half of M2",
        "partial": [{"milestone_id": m2["id"], "completion_bp": 5000}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["disbursed_vnd"] == 333_300_000 + 166_650_000
    assert body["cancelled_vnd"] == 166_650_000 + 333_400_001
    assert body["disbursed_vnd"] + body["cancelled_vnd"] == body["awarded_vnd"]
    assert events_for(grants_db, grant["id"])[-2:] == ["tranche.released", "grant.closed"]


def test_closing_twice_is_409_and_changes_nothing(w):
    grant = w.grant()
    close = {"outcome": "failed_in_good_faith", "justification": "x",
             "procedures_followed": True}
    assert w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json=close).status_code \
        == 200
    again = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json=close)
    assert again.status_code == 409


def test_completed_needs_every_milestone_accepted(w):
    grant = w.grant()
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm,
                 json={"outcome": "completed", "justification": "done"})
    assert r.status_code == 409
    for seq in (1, 2, 3):
        w.report(grant, seq)
        w.accept(grant, seq)
    r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm,
                 json={"outcome": "completed", "justification": "done"})
    assert r.json()["disbursed_vnd"] == 1_000_000_001 and r.json()["liability"] == "n/a"


def test_grant_lists_by_role(w):
    grant = w.grant()
    mine = w.c.get("/v1/grants", headers=w.lead).json()["items"]
    assert grant["id"] in [g["id"] for g in mine]
    assert w.c.get("/v1/grants", headers=w.outsider).json()["items"] == []
    inst = w.c.get(f"/v1/institutions/{INSTITUTION}/grants", headers=w.office).json()["items"]
    assert grant["id"] in [g["id"] for g in inst]
    assert w.c.get(f"/v1/institutions/{INSTITUTION}/grants",
                   headers=w.other_office).status_code == 404
    for national in (w.auditor, w.finance):  # finance lists the grants it pays
        by_call = w.c.get("/v1/grants", headers=national,
                          params={"call_id": grant["call_id"], "status": "active"}).json()
        assert [g["id"] for g in by_call["items"]] == [grant["id"]]


# --- portfolio ---------------------------------------------------------------------------

def test_the_portfolio_counts_good_faith_failure_as_accepted_risk(w):
    agency_pm = w.pm
    done = w.grant()
    for seq in (1, 2, 3):
        w.report(done, seq)
        w.accept(done, seq)
    w.c.post(f"/v1/grants/{done['id']}/close", headers=agency_pm,
             json={"outcome": "completed", "justification": "ok"})
    failed = w.grant()
    w.c.post(f"/v1/grants/{failed['id']}/close", headers=agency_pm, json={
        "outcome": "failed_in_good_faith", "justification": "x", "procedures_followed": True})
    p = w.c.get("/v1/portfolio", headers=agency_pm,
                params={"call_id": failed["call_id"]}).json()["overall"]
    assert p["by_outcome"]["failed_in_good_faith"] == 1
    assert p["accepted_risk"] == {"count": 1, "awarded_vnd": 1_000_000_001,
                                  "disbursed_vnd": 0}
    assert p["refund_due_vnd"] == 0
    everything = w.c.get("/v1/portfolio", headers=w.auditor,
                         params={"agency": AGENCY}).json()["overall"]
    assert everything["closed"] >= 2
    assert everything["committed_vnd"] == everything["awarded_vnd"] - everything[
        "cancelled_vnd"]


def test_a_programme_manager_sees_only_their_agencys_portfolio(w):
    assert w.c.get("/v1/portfolio", headers=w.pm).json()["agency_id"] == AGENCY
    assert w.c.get("/v1/portfolio", headers=w.auditor).json()["agency_id"] is None
    assert w.c.get("/v1/portfolio", headers=w.pm,
                   params={"agency": "DOST-HN"}).status_code == 403
    assert w.c.get("/v1/portfolio", headers=w.lead).status_code == 403


def test_the_application_history_keeps_review_blind(w):
    call = w.open_call()
    app = w.reviewed(call["id"])
    path = f"/v1/applications/{app['id']}/history"

    def reviews_seen(who: dict) -> list[tuple[str, object]]:
        r = w.c.get(path, headers=who)
        assert r.status_code == 200, r.text
        return [(e["actor"], e["data"]) for e in r.json()["items"] if e["action"] == "review"]

    # The applicants and their institution: that two reviews happened, not who or how.
    for applicant in (w.lead, w.member, w.office):
        assert reviews_seen(applicant) == [("(reviewer)", None)] * 2
    # A reviewer before the decision: their own review only.
    mine = reviews_seen(w.rev1)
    assert mine[0][0] == "rev-1" and mine[0][1]["recommendation"] == "fund"
    assert mine[1] == ("(reviewer)", None)
    # The agency's programme managers and the auditors: everything.
    for ministry in (w.pm, w.auditor):
        assert [actor for actor, _ in reviews_seen(ministry)] == ["rev-1", "rev-2"]


def test_the_researcher_who_drafted_an_application_reads_its_grant(w):
    call = w.open_call()
    body = w.application_body(call["id"])
    drafter = w.t.headers("r-drafter", "researcher", org=INSTITUTION)  # not on the team
    app = w.c.post("/v1/applications", headers=drafter, json=body).json()
    assert w.c.post(f"/v1/applications/{app['id']}/submit", headers=drafter).status_code \
        == 200
    for reviewer in (w.rev1, w.rev2):
        assert w.review(app["id"], reviewer).status_code == 201
    decided = w.c.post(f"/v1/applications/{app['id']}/decision", headers=w.pm,
                       json={"decision": "approve", "awarded_vnd": 1_000_000_001}).json()
    assert w.c.get(f"/v1/grants/{decided['grant_id']}", headers=drafter).status_code == 200
    listed = w.c.get("/v1/grants", headers=drafter).json()["items"]
    assert [g["id"] for g in listed] == [decided["grant_id"]]
    assert w.c.get(f"/v1/grants/{decided['grant_id']}", headers=w.outsider).status_code == 404


def test_another_agencys_draft_call_does_not_show_through_its_applications(w):
    draft = w.c.post("/v1/calls", headers=w.pm_other, json={
        "title": "Draft", "budget_vnd": 1_000, "max_award_vnd": 1_000,
        "opens_at": "2026-11-01T00:00:00Z", "closes_at": "2027-06-01T00:00:00Z"}).json()
    for outsider in (w.pm, w.rev1):
        r = w.c.get(f"/v1/calls/{draft['id']}/applications", headers=outsider)
        assert r.status_code == 404, r.text
    assert w.c.get(f"/v1/calls/{draft['id']}/applications",
                   headers=w.pm_other).status_code == 200


def test_a_programme_manager_token_without_an_agency_gets_no_portfolio(w):
    w.grant()
    nowhere = w.t.headers("pm-x", "program_manager", org="")
    r = w.c.get("/v1/portfolio", headers=nowhere)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("scores", [
    {"nov\u0000elty": 5}, {"": 5}, {"   ": 5}, {"x" * 101: 5},
    {f"c{i}": 3 for i in range(51)},
])
def test_review_criteria_are_named_text(w, scores):
    call = w.open_call()
    app = w.submitted(call["id"])
    r = w.c.post(f"/v1/applications/{app['id']}/reviews", headers=w.rev1, json={
        "scores": scores, "recommendation": "fund", "conflict_of_interest": False})
    assert r.status_code == 422, r.text
    assert w.c.get(f"/v1/applications/{app['id']}/reviews", headers=w.pm).json()["items"] \
        == []


def test_declarations_are_json_booleans(w):
    call = w.open_call()
    app = w.submitted(call["id"])
    for said in ("no", 0, "false"):
        r = w.c.post(f"/v1/applications/{app['id']}/reviews", headers=w.rev1, json={
            "scores": {"novelty": 5}, "recommendation": "fund",
            "conflict_of_interest": said})
        assert r.status_code == 422, (said, r.text)
    grant = w.grant()
    for said in ("yes", 1, "on", "true"):
        r = w.c.post(f"/v1/grants/{grant['id']}/close", headers=w.pm, json={
            "outcome": "failed_in_good_faith", "justification": "the hypothesis failed",
            "procedures_followed": said})
        assert r.status_code == 422, (said, r.text)
    assert w.c.get(f"/v1/grants/{grant['id']}", headers=w.pm).json()["status"] != "closed"


def test_no_one_decides_accepts_or_closes_their_own(w):
    # A programme manager who also applies (both roles in one token) is refused with the
    # reason, on the decision and on every action on the grant, and nothing changes.
    insider = w.t.headers("r-lead", "researcher", "program_manager", org=AGENCY)
    call = w.open_call()
    app = w.reviewed(call["id"])  # drafted by r-lead
    r = w.c.post(f"/v1/applications/{app['id']}/decision", headers=insider,
                 json={"decision": "approve", "awarded_vnd": 1_000_000_001})
    assert r.status_code == 409 and "conflict of interest" in r.json()["detail"]
    assert w.c.get(f"/v1/applications/{app['id']}", headers=w.pm).json()["status"] \
        != "approved"

    grant = w.grant()
    assert w.report(grant, 1).status_code == 200
    for path, body in ((f"milestones/{grant['milestones'][0]['id']}/accept", None),
                       ("close", {"outcome": "failed_in_good_faith",
                                  "justification": "x", "procedures_followed": True})):
        r = w.c.post(f"/v1/grants/{grant['id']}/{path}", headers=insider, json=body)
        assert r.status_code == 409, (path, r.text)
        assert "conflict of interest" in r.json()["detail"]
    after = w.c.get(f"/v1/grants/{grant['id']}", headers=w.pm).json()
    assert after["status"] == grant["status"] and after["disbursed_vnd"] == 0
