"""Object-level access: a caller holding the right role, but not the object.

A researcher, an institution, a payee, a firm, a reviewer and a programme manager try to
read or change what belongs to someone else of their own role, at the service directly
and through the gateway. Where the object's existence is private the answer is 404 (the
same as for an id that does not exist); where the caller may see the object but not act
on it, 403; a reviewer with a conflict of interest is refused with 409 naming it. No
refusal stores anything; a partial view (a payee's distribution) shows only the caller's
own part.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import FIGURES
from .world import CAST, OTHERS, World, bodies, split

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

ASSESSMENT_PATH = "/sandbox/v1/applications/{sandbox_application_id}/assessments"

# (who, what they try, method, path with {id names}, the body's operation or None,
#  the statuses the contract allows)
CASES: list[tuple[str, str, str, str, tuple[str, str] | None, set[int]]] = [
    # a researcher who is not on the team
    ("outsider", "reads another's application", "GET",
     "/grants/v1/applications/{application_id}", None, {404}),
    ("outsider", "edits another's draft", "PUT",
     "/grants/v1/applications/{draft_application_id}",
     ("PUT", "/grants/v1/applications/{application_id}"), {404}),
    ("outsider", "submits another's draft", "POST",
     "/grants/v1/applications/{draft_application_id}/submit", None, {404}),
    ("outsider", "withdraws another's application", "POST",
     "/grants/v1/applications/{application_id}/withdraw",
     ("POST", "/grants/v1/applications/{application_id}/withdraw"), {404}),
    ("outsider", "reads another's grant", "GET", "/grants/v1/grants/{grant_id}", None, {404}),
    ("outsider", "reads another grant's history", "GET",
     "/grants/v1/grants/{grant_id}/history", None, {404}),
    ("outsider", "reports on another's milestone", "POST",
     "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/report",
     ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/report"), {404}),
    ("outsider", "registers a result on another's grant", "POST",
     "/grants/v1/grants/{grant_id}/results",
     ("POST", "/grants/v1/grants/{grant_id}/results"), {404}),
    ("outsider", "reads an asset they did not author", "GET",
     "/ipshare/v1/assets/{asset_id}", None, {404}),
    ("outsider", "reads a distribution they have no line in", "GET",
     "/ipshare/v1/distributions/{distribution_id}", None, {404}),
    # a team member who did not draft the application
    ("member", "edits the lead's draft", "PUT",
     "/grants/v1/applications/{draft_application_id}",
     ("PUT", "/grants/v1/applications/{application_id}"), {403}),
    ("member", "withdraws the lead's application", "POST",
     "/grants/v1/applications/{application_id}/withdraw",
     ("POST", "/grants/v1/applications/{application_id}/withdraw"), {403}),
    # a payee reading another payee
    ("member", "reads another payee's statement", "GET",
     "/ipshare/v1/payees/{payee_id}/statement", None, {403, 404}),
    # another institution
    ("other_office", "reads another institution's application", "GET",
     "/grants/v1/applications/{application_id}", None, {404}),
    ("other_office", "endorses another institution's draft", "POST",
     "/grants/v1/applications/{draft_application_id}/endorse", None, {404}),
    ("other_office", "reads another institution's grant", "GET",
     "/grants/v1/grants/{grant_id}", None, {404}),
    ("other_office", "lists another institution's grants", "GET",
     "/grants/v1/institutions/{institution_id}/grants", None, {403, 404}),
    ("other_office", "reads another institution's asset", "GET",
     "/ipshare/v1/assets/{asset_id}", None, {404}),
    ("other_office", "licenses another institution's asset", "POST",
     "/ipshare/v1/assets/{asset_id}/agreements",
     ("POST", "/ipshare/v1/assets/{asset_id}/agreements"), {404}),
    ("other_office", "reads another institution's agreement", "GET",
     "/ipshare/v1/agreements/{agreement_id}", None, {404}),
    ("other_office", "posts income on another institution's agreement", "POST",
     "/ipshare/v1/agreements/{agreement_id}/income",
     ("POST", "/ipshare/v1/agreements/{agreement_id}/income"), {404}),
    ("other_office", "terminates another institution's agreement", "POST",
     "/ipshare/v1/agreements/{agreement_id}/terminate",
     ("POST", "/ipshare/v1/agreements/{agreement_id}/terminate"), {404}),
    ("other_office", "reads another institution's distribution", "GET",
     "/ipshare/v1/distributions/{distribution_id}", None, {404}),
    ("other_office", "reverses another institution's distribution", "POST",
     "/ipshare/v1/distributions/{distribution_id}/reverse",
     ("POST", "/ipshare/v1/distributions/{distribution_id}/reverse"), {404}),
    ("other_office", "sets another institution's policy", "PUT",
     "/ipshare/v1/institutions/{institution_id}/policy",
     ("PUT", "/ipshare/v1/institutions/{institution_id}/policy"), {403, 404}),
    ("other_office", "reads a payee it never paid", "GET",
     "/ipshare/v1/payees/{payee_id}/statement", None, {404}),
    # another firm
    ("other_firm", "reads another firm's application", "GET",
     "/sandbox/v1/applications/{sandbox_application_id}", None, {404}),
    ("other_firm", "edits another firm's application", "PUT",
     "/sandbox/v1/applications/{sandbox_application_id}",
     ("PUT", "/sandbox/v1/applications/{application_id}"), {404}),
    ("other_firm", "withdraws another firm's application", "POST",
     "/sandbox/v1/applications/{sandbox_application_id}/withdraw",
     ("POST", "/sandbox/v1/applications/{application_id}/withdraw"), {404}),
    ("other_firm", "reads another firm's pilot", "GET", "/sandbox/v1/pilots/{pilot_id}",
     None, {404}),
    ("other_firm", "reads another firm's pilot history", "GET",
     "/sandbox/v1/pilots/{pilot_id}/history", None, {404}),
    ("other_firm", "files a report on another firm's pilot", "POST",
     "/sandbox/v1/pilots/{pilot_id}/reports",
     ("POST", "/sandbox/v1/pilots/{pilot_id}/reports"), {404}),
    ("other_firm", "reports an incident on another firm's pilot", "POST",
     "/sandbox/v1/pilots/{pilot_id}/incidents",
     ("POST", "/sandbox/v1/pilots/{pilot_id}/incidents"), {404}),
    ("other_firm", "files the exit of another firm's pilot", "POST",
     "/sandbox/v1/pilots/{pilot_id}/exit",
     ("POST", "/sandbox/v1/pilots/{pilot_id}/exit"), {404}),
    # reviewers with a conflict, or acting on another reviewer's assignment
    ("rev_hust", "reviews an application of their own institution", "POST",
     "/grants/v1/applications/{application_id}/reviews",
     ("POST", "/grants/v1/applications/{application_id}/reviews"), {409}),
    ("rev_hust", "reads an application of their own institution", "GET",
     "/grants/v1/applications/{application_id}", None, {404}),
    ("rev_2", "declares on another reviewer's assignment", "POST",
     "/grants/v1/assignments/{assignment_id}/declaration",
     ("POST", "/grants/v1/assignments/{assignment_id}/declaration"), {403, 404}),
    ("rev_2", "declines another reviewer's assignment", "POST",
     "/grants/v1/assignments/{assignment_id}/decline",
     ("POST", "/grants/v1/assignments/{assignment_id}/decline"), {403, 404}),
    ("rev_firm", "assesses an application of their own firm", "POST", ASSESSMENT_PATH,
     ("POST", "/sandbox/v1/applications/{application_id}/assessments"), {409}),
    ("rev_firm", "reads an application of their own firm", "GET",
     "/sandbox/v1/applications/{sandbox_application_id}", None, {404}),
    # a programme manager of another agency
    ("other_pm", "edits another agency's call", "PUT", "/grants/v1/calls/{call_id}",
     ("PUT", "/grants/v1/calls/{call_id}"), {403, 404}),
    ("other_pm", "closes another agency's call", "POST", "/grants/v1/calls/{call_id}/close",
     None, {403, 404}),
    ("other_pm", "cancels another agency's call", "POST",
     "/grants/v1/calls/{call_id}/cancel", ("POST", "/grants/v1/calls/{call_id}/cancel"),
     {403, 404}),
    ("other_pm", "decides on another agency's application", "POST",
     "/grants/v1/applications/{application_id}/decision",
     ("POST", "/grants/v1/applications/{application_id}/decision"), {403, 404}),
    ("other_pm", "accepts a milestone of another agency's grant", "POST",
     "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/accept", None, {403, 404}),
    ("other_pm", "closes another agency's grant", "POST", "/grants/v1/grants/{grant_id}/close",
     ("POST", "/grants/v1/grants/{grant_id}/close"), {403, 404}),
    ("other_pm", "reads another agency's portfolio", "GET",
     "/grants/v1/portfolio?agency=MOST", None, {403}),
]


def fill(world: World, template: str) -> str:
    return template.format(**world.ids)


@pytest.mark.parametrize(("who", "attempt", "method", "template", "body_of", "expected"),
                         CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
async def test_a_caller_cannot_reach_an_object_of_another(
        world: World, who: str, attempt: str, method: str, template: str,
        body_of: tuple[str, str] | None, expected: set[int]) -> None:
    path = fill(world, template)
    body = bodies(world.ids)[body_of] if body_of else None
    service, _ = split(path)
    before = world.fingerprint(service)
    answers: dict[str, Any] = {}
    for via_gateway in (False, True):
        response = await world.call(OTHERS[who], method, path, body=body,
                                    via_gateway=via_gateway)
        answers["edge" if via_gateway else service] = response
        assert response.status_code in expected, (attempt, via_gateway, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert world.fingerprint(service) == before, f"{who} {attempt}: something was stored"
    # The edge passes the service's refusal on as it is.
    assert answers["edge"].status_code == answers[service].status_code
    FIGURES["object access"] = f"{len(CASES)} cases refused, nothing stored"


async def test_a_hidden_object_answers_as_one_that_does_not_exist(world: World) -> None:
    """The 404 of a private object says nothing an unknown id would not."""
    outsider = OTHERS["outsider"]
    real = await world.call(outsider, "GET", fill(world, "/grants/v1/grants/{grant_id}"))
    unknown = await world.call(outsider, "GET",
                               "/grants/v1/grants/00000000-0000-0000-0000-000000000000")
    assert real.status_code == unknown.status_code == 404
    assert set(real.json()) == set(unknown.json())
    assert real.json()["title"] == unknown.json()["title"]


async def test_a_payee_sees_the_totals_and_only_their_own_line(world: World) -> None:
    path = fill(world, "/ipshare/v1/distributions/{distribution_id}")
    whole = await world.ok(CAST["institution"], "GET", path)
    seen = await world.ok(OTHERS["member"], "GET", path)
    assert len(whole["lines"]) == 3  # two authors and the institution
    assert [line["payee_id"] for line in seen["lines"]] == ["r-member"]
    assert seen["gross_vnd"] == whole["gross_vnd"]


async def test_lists_show_a_caller_only_what_is_theirs(world: World) -> None:
    for who, path in [("outsider", "/grants/v1/applications"),
                      ("outsider", "/grants/v1/grants"),
                      ("other_office", "/grants/v1/applications"),
                      ("other_office", "/ipshare/v1/assets"),
                      ("other_firm", "/sandbox/v1/applications"),
                      ("other_firm", "/sandbox/v1/pilots"),
                      ("other_pm", "/grants/v1/applications")]:
        for via_gateway in (False, True):
            response = await world.call(OTHERS[who], "GET", path, via_gateway=via_gateway)
            assert response.status_code == 200, (who, path, response.text)
            assert response.json()["items"] == [], (who, path)


async def test_the_owner_still_reaches_every_object_tried_above(world: World) -> None:
    """The refusals above are about the caller, not a broken object."""
    for who, template in [("researcher", "/grants/v1/applications/{application_id}"),
                          ("researcher", "/grants/v1/grants/{grant_id}"),
                          ("institution", "/ipshare/v1/agreements/{agreement_id}"),
                          ("sandbox_applicant", "/sandbox/v1/pilots/{pilot_id}"),
                          ("program_manager", "/grants/v1/calls/{call_id}")]:
        await world.ok(CAST[who], "GET", fill(world, template))
    # A reviewer without a conflict reads the application the conflicted one may not.
    await world.ok(OTHERS["rev_2"], "GET", fill(world, "/grants/v1/applications/{application_id}"))
