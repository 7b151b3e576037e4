"""Figures from raw numbers, groups with exact medians, statements with their numbers, and access."""

from __future__ import annotations

from collections import Counter

import pytest
from shequtong_insights.domain import access
from shequtong_insights.domain import metrics as m
from shequtong_insights.domain.csvexport import to_csv
from shequtong_insights.domain.figures import RawFigures, build, merge_all, peer_median, public_view
from shequtong_insights.domain.prompts import ACKNOWLEDGED, DISMISSED, OPEN, clean_note, decide
from shequtong_insights.domain.trends import trends

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

H = 3600.0


def raw(**counters: int) -> RawFigures:
    return RawFigures(counters=Counter(counters))


def test_build_figures() -> None:
    r = raw(issues_reported=4, ratings=4, rating_sum=17, ratings_satisfied=3, volunteer_minutes=150)
    r.residents, r.active = 20, 5
    r.response_seconds = [1 * H, 3 * H, 2 * H]
    r.resolutions = [(10 * H, True), (30 * H, False)]
    f = build(r)
    assert f.participation_rate == 0.25
    assert f.response_time.median_hours == 2.0
    assert f.resolution_time.median_hours == 20.0
    assert (f.resolved_inside, f.share_resolved_inside) == (1, 0.5)
    assert (f.mean_rating, f.share_satisfied) == (4.25, 0.75)
    assert f.volunteer_hours == 2.5


def test_group_median_is_over_all_issues_not_a_median_of_medians() -> None:
    a, b = RawFigures(), RawFigures()
    a.response_seconds = [1 * H]
    b.response_seconds = [2 * H, 10 * H, 11 * H]
    assert build(merge_all([a, b])).response_time.median_hours == 6.0  # medians 1 and 10.5 would say 5.75


def test_public_view_keeps_only_public_figures() -> None:
    r = raw(issues_resolved=3, posts=9, conventions_adopted=1)
    r.response_seconds, r.residents = [H], 40
    shown = public_view(build(r))
    assert (shown.issues_resolved, shown.response_time.count, shown.conventions_adopted) == (3, 1, 1)
    assert (shown.posts, shown.residents) == (0, 0)


def test_peer_median_and_trend_statements() -> None:
    def with_response(hours: float, residents: int, active: int) -> RawFigures:
        r = raw(posts=residents // 10)
        r.response_seconds, r.residents, r.active = [hours * H], residents, active
        return r

    current = build(with_response(2, 100, 30))
    previous = build(with_response(4, 100, 30))
    peers = [build(with_response(h, 50, 5)) for h in (3, 5, 9)]
    assert peer_median(peers).response_time.median_hours == 5.0
    by_name = {t.measure: t for t in trends(current, previous, peers, 30)}
    response = by_name["response_median_hours"]
    assert (response.current, response.previous, response.peer_median) == (2.0, 4.0, 5.0)
    assert (response.direction, response.versus_peers, response.higher_is_better) == ("down", "below", False)
    assert "2.0 h" in response.statement and "4.0 h" in response.statement and "5.0 h" in response.statement
    rate = by_name["participation_rate"]
    assert (rate.direction, rate.versus_peers) == ("flat", "above")
    rating = by_name["mean_rating"]
    assert rating.current is None and rating.direction == "no_data"


def principal(*roles: str) -> Principal:
    return Principal("p1", parse_roles(roles))


LINEAGE = Lineage("n1", "s1", "d1")


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (("cadre@n:n1",), access.FULL),
        (("subdistrict_staff@s:s1",), access.FULL),
        (("district_staff@d:d1",), access.FULL),
        (("operator@*",), access.FULL),
        (("resident@n:n1",), access.PUBLIC),
        (("cadre@n:n2", "resident@n:n2"), None),
        (("subdistrict_staff@s:s2",), None),
        ((), None),
    ],
)
def test_portrait_visibility(roles: tuple[str, ...], expected: str | None) -> None:
    if expected is None:
        with pytest.raises(PermissionDenied) as err:
            access.portrait_visibility(principal(*roles), LINEAGE)
        assert err.value.code == "portrait_forbidden"
    else:
        assert access.portrait_visibility(principal(*roles), LINEAGE) == expected


def test_comparisons_and_prompts_access() -> None:
    access.ensure_may_compare(principal("district_staff@d:d1"), "d1", "", "")
    access.ensure_may_compare(principal("district_staff@d:d1"), "", "s1", "d1")
    access.ensure_may_compare(principal("subdistrict_staff@s:s1"), "", "s1", "d1")
    for roles, d, s in [(("cadre@n:n1",), "", "s1"), (("subdistrict_staff@s:s1",), "d1", ""), ((), "d1", "")]:
        with pytest.raises(PermissionDenied):
            access.ensure_may_compare(principal(*roles), d, s, "d1")
    cadre = principal("cadre@n:n1")
    assert access.may_handle_prompt(cadre, "neighbourhood", "n1", "s1", "d1")
    assert not access.may_handle_prompt(cadre, "subdistrict", "", "s1", "d1")
    assert not access.may_handle_prompt(cadre, "neighbourhood", "n2", "s1", "d1")
    assert access.may_handle_prompt(principal("subdistrict_staff@s:s1"), "subdistrict", "", "s1", "d1")
    assert access.prompt_scope(principal("resident@n:n1")).empty


def test_prompt_decisions() -> None:
    assert decide(OPEN, ACKNOWLEDGED) and decide(ACKNOWLEDGED, DISMISSED)
    assert decide(DISMISSED, DISMISSED) is False
    with pytest.raises(FailedPrecondition) as err:
        decide(DISMISSED, ACKNOWLEDGED)
    assert err.value.code == "prompt_already_decided"
    with pytest.raises(InvalidArgument) as missing:
        clean_note("  ", required=True)
    assert missing.value.code == "reason_required"
    assert clean_note("  fixed   by the property office ", required=False) == "fixed by the property office"


def test_csv_has_bom_and_defuses_formulas() -> None:
    content, count = to_csv(("name", "n", "rate"), [("=cmd()", -3, 0.25), ("淞南十村", 4, 0.5)])
    text = content.decode("utf-8")
    assert text.startswith("\ufeffname,n,rate\r\n")
    assert "'=cmd(),-3,0.25" in text and "淞南十村,4,0.5" in text
    assert count == 2
    assert m.ISSUES_REPORTED in m.DAILY_COLUMNS
