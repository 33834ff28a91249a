"""Every operation behind the gateway, and who may call it: the one route table.

Each row is ``(method, path template, access)``, the path as the caller sees it (with
the service's prefix). ``access`` is one of:

- a tuple of roles: a token holding at least one of them (401 without a valid token,
  403 with none of the roles; the service still checks ownership and its finer rules);
- ``PUBLIC``: no token needed, but a token that is sent must be valid (else 401);
- ``PROBE``: public and never rate limited (liveness and readiness);
- ``INTERNAL``: the gateway's Prometheus metrics, for the networks in
  ``GATEWAY_METRICS_NETWORKS`` only (404 to anyone else).

A ``GET`` row also admits ``HEAD``. Anything not in the table is refused (404, or 405
when the path has other methods) and never reaches a service; a test fails when a
service has an operation this table lacks. Roles follow the public contract ("ministry
roles" are ``MINISTRY``); where an operation admits several roles and the service
narrows them to owners, the table names every role that can ever be admitted. Reads
(``GET``) are rate limited in the ``read`` class, everything else in ``write``.
"""

from __future__ import annotations

PUBLIC = "public"
PROBE = "probe"
INTERNAL = "internal"

MINISTRY = ("program_manager", "reviewer", "auditor", "admin")
PM = ("program_manager",)
RESEARCHER = ("researcher",)
REVIEWER = ("reviewer",)
INSTITUTION = ("institution",)
FIRM = ("sandbox_applicant",)

# grants: who reads an application (the team, its institution, the ministry) and a grant
# (the same, and finance; finance reads the grant itself only, not its trail or results).
APPLICATION_READERS = ("researcher", "institution", *MINISTRY)
GRANT_READERS = (*APPLICATION_READERS, "finance")
# the reviewer's queue: a reviewer (their own), a programme manager (their agency's), an
# auditor (all).
ASSIGNMENT_READERS = ("reviewer", "program_manager", "auditor")
# sandbox: the firm reads its own, the ministry reads all.
SANDBOX_READERS = (*FIRM, *MINISTRY)
# ipshare: the institution, its researchers (authors, payees), the books.
BOOKS = ("finance", "auditor", "admin")
IP_READERS = ("institution", "researcher", *BOOKS)
POSTERS = ("institution", "finance")

ROUTES: tuple[tuple[str, str, str | tuple[str, ...]], ...] = (
    # the gateway's own
    ("GET", "/health", PROBE),
    ("GET", "/ready", PROBE),
    ("GET", "/metrics", INTERNAL),
    ("GET", "/openapi.json", PUBLIC),
    ("GET", "/docs", PUBLIC),
    ("POST", "/dev/tokens", PUBLIC),  # served in the dev profile only
    # grants
    ("GET", "/grants/health", PROBE),
    ("GET", "/grants/ready", PROBE),
    ("POST", "/grants/v1/calls", PM),
    ("GET", "/grants/v1/calls", PUBLIC),
    ("GET", "/grants/v1/calls/{call_id}", PUBLIC),
    ("PUT", "/grants/v1/calls/{call_id}", PM),
    ("POST", "/grants/v1/calls/{call_id}/open", PM),
    ("POST", "/grants/v1/calls/{call_id}/close", PM),
    ("POST", "/grants/v1/calls/{call_id}/cancel", PM),
    ("GET", "/grants/v1/calls/{call_id}/history", ("program_manager", "auditor", "admin")),
    ("GET", "/grants/v1/calls/{call_id}/applications", MINISTRY),
    ("POST", "/grants/v1/applications", RESEARCHER),
    ("GET", "/grants/v1/applications", APPLICATION_READERS),
    ("GET", "/grants/v1/applications/{application_id}", APPLICATION_READERS),
    ("PUT", "/grants/v1/applications/{application_id}", RESEARCHER),
    ("GET", "/grants/v1/applications/{application_id}/history", APPLICATION_READERS),
    ("POST", "/grants/v1/applications/{application_id}/submit", RESEARCHER),
    ("POST", "/grants/v1/applications/{application_id}/withdraw", RESEARCHER),
    ("POST", "/grants/v1/applications/{application_id}/endorse", INSTITUTION),
    ("POST", "/grants/v1/applications/{application_id}/reviews", REVIEWER),
    ("GET", "/grants/v1/applications/{application_id}/reviews", MINISTRY),
    ("POST", "/grants/v1/applications/{application_id}/assignments", PM),
    ("POST", "/grants/v1/applications/{application_id}/decision", PM),
    ("GET", "/grants/v1/assignments", ASSIGNMENT_READERS),
    ("GET", "/grants/v1/assignments/{assignment_id}", ASSIGNMENT_READERS),
    ("GET", "/grants/v1/assignments/{assignment_id}/history", ASSIGNMENT_READERS),
    ("POST", "/grants/v1/assignments/{assignment_id}/declaration", REVIEWER),
    ("POST", "/grants/v1/assignments/{assignment_id}/decline", REVIEWER),
    ("GET", "/grants/v1/grants", GRANT_READERS),
    ("GET", "/grants/v1/grants/{grant_id}", GRANT_READERS),
    ("GET", "/grants/v1/grants/{grant_id}/history", APPLICATION_READERS),
    ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/report", RESEARCHER),
    ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/accept", PM),
    ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/reject", PM),
    ("POST", "/grants/v1/grants/{grant_id}/milestones/{milestone_id}/reschedule", PM),
    ("POST", "/grants/v1/grants/{grant_id}/results", RESEARCHER),
    ("GET", "/grants/v1/grants/{grant_id}/results", APPLICATION_READERS),
    ("POST", "/grants/v1/grants/{grant_id}/breaches", PM),
    ("POST", "/grants/v1/grants/{grant_id}/close", PM),
    ("GET", "/grants/v1/institutions/{institution_id}/grants", ("institution", *MINISTRY)),
    ("GET", "/grants/v1/portfolio", ("program_manager", "auditor", "admin")),
    # sandbox
    ("GET", "/sandbox/health", PROBE),
    ("GET", "/sandbox/ready", PROBE),
    ("GET", "/sandbox/v1/sectors", PUBLIC),
    ("GET", "/sandbox/v1/register", PUBLIC),
    ("GET", "/sandbox/v1/register/{pilot_id}", PUBLIC),
    ("POST", "/sandbox/v1/applications", FIRM),
    ("GET", "/sandbox/v1/applications", SANDBOX_READERS),
    ("GET", "/sandbox/v1/applications/{application_id}", SANDBOX_READERS),
    ("PUT", "/sandbox/v1/applications/{application_id}", FIRM),
    ("GET", "/sandbox/v1/applications/{application_id}/history", SANDBOX_READERS),
    ("POST", "/sandbox/v1/applications/{application_id}/submit", FIRM),
    ("POST", "/sandbox/v1/applications/{application_id}/withdraw", FIRM),
    ("POST", "/sandbox/v1/applications/{application_id}/assessments", REVIEWER),
    ("GET", "/sandbox/v1/applications/{application_id}/assessments", MINISTRY),
    ("POST", "/sandbox/v1/applications/{application_id}/request-changes", REVIEWER),
    ("POST", "/sandbox/v1/applications/{application_id}/decision", REVIEWER),
    ("GET", "/sandbox/v1/pilots", SANDBOX_READERS),
    ("GET", "/sandbox/v1/pilots/{pilot_id}", SANDBOX_READERS),
    ("GET", "/sandbox/v1/pilots/{pilot_id}/history", SANDBOX_READERS),
    ("GET", "/sandbox/v1/pilots/{pilot_id}/reports", SANDBOX_READERS),
    ("GET", "/sandbox/v1/pilots/{pilot_id}/incidents", SANDBOX_READERS),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/reports", FIRM),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/incidents", (*FIRM, "reviewer")),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/suspend", REVIEWER),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/resume", REVIEWER),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/terminate", REVIEWER),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/extend", REVIEWER),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/adjust", REVIEWER),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/exit", FIRM),
    ("POST", "/sandbox/v1/pilots/{pilot_id}/exit/accept", REVIEWER),
    # ipshare
    ("GET", "/ipshare/health", PROBE),
    ("GET", "/ipshare/ready", PROBE),
    ("POST", "/ipshare/v1/assets", INSTITUTION),
    ("GET", "/ipshare/v1/assets", IP_READERS),
    ("GET", "/ipshare/v1/assets/{asset_id}", IP_READERS),
    ("GET", "/ipshare/v1/assets/{asset_id}/history", IP_READERS),
    ("POST", "/ipshare/v1/assets/{asset_id}/agreements", INSTITUTION),
    ("GET", "/ipshare/v1/assets/{asset_id}/agreements", IP_READERS),
    ("GET", "/ipshare/v1/agreements/{agreement_id}", IP_READERS),
    ("GET", "/ipshare/v1/agreements/{agreement_id}/history", IP_READERS),
    ("POST", "/ipshare/v1/agreements/{agreement_id}/terminate", INSTITUTION),
    ("POST", "/ipshare/v1/agreements/{agreement_id}/income", POSTERS),
    ("GET", "/ipshare/v1/agreements/{agreement_id}/distributions", ("institution", *BOOKS)),
    ("GET", "/ipshare/v1/distributions/{distribution_id}", IP_READERS),
    ("GET", "/ipshare/v1/distributions/{distribution_id}/history", ("institution", *BOOKS)),
    ("POST", "/ipshare/v1/distributions/{distribution_id}/reverse", POSTERS),
    ("GET", "/ipshare/v1/payees/{payee_id}/statement", IP_READERS),
    ("GET", "/ipshare/v1/ledger/trial-balance", BOOKS),
    ("PUT", "/ipshare/v1/institutions/{institution_id}/policy", INSTITUTION),
    ("GET", "/ipshare/v1/institutions/{institution_id}/policy", IP_READERS),
    ("GET", "/ipshare/v1/institutions/{institution_id}/policy/history", IP_READERS),
)
