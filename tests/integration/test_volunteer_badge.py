"""Apply → approve → the volunteer badge appears in the resident's profile from identity.

The volunteers service publishes `volunteers.volunteer.approved` (VolunteerApproved); identity grants
`volunteer@n:<neighbourhood>` on it. Kept apart so it is visible on its own while identity's consumer lands.
"""

from __future__ import annotations

import httpx

from integration.helpers import eventually
from integration.people import new_neighbourhood_with_people, sign_in


def test_an_approved_volunteer_carries_the_badge(api: httpx.Client, ops_headers: dict[str, str]) -> None:
    c = new_neighbourhood_with_people(api, ops_headers)
    resident = c.resident
    badge = f"volunteer@n:{c.neighbourhood_id}"

    def roles() -> list[str]:
        reply = api.get("/v1/me", headers=resident.headers)
        assert reply.status_code == 200, reply.text
        return list(reply.json()["roles"])

    assert badge not in roles()
    application = api.post(
        f"/v1/neighbourhoods/{c.neighbourhood_id}/volunteer-applications",
        json={"skills": ["急救"], "availability": "工作日晚上"},
        headers=resident.headers,
    )
    assert application.status_code == 201, application.text
    assert badge not in roles(), "an application alone earns no badge"
    approved = api.post(f"/v1/volunteers/{application.json()['id']}/approve", headers=c.cadre.headers)
    assert approved.status_code == 200, approved.text

    def badge_shown() -> bool:
        sign_in(api, resident)  # a fresh token carries the roles identity holds now
        return badge in roles()

    eventually(badge_shown, timeout=30, interval=0.5, what="the volunteer badge in the resident's profile")
