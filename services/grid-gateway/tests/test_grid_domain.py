"""The grid gateway's pure rules: states, ordering, what goes out, delivery policy, signatures,
access and the catalogue. No I/O."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shequtong_grid_gateway.domain import access
from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.catalogue import (
    DEFAULT_KEY,
    CatalogueError,
    parse_catalogue_file,
    parse_services,
    resolve_service_code,
)
from shequtong_grid_gateway.domain.delivery import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    TokenBucket,
    Verdict,
    backoff_seconds,
    classify_status,
    should_give_up,
)
from shequtong_grid_gateway.domain.webhook import (
    Refused,
    check_api_key,
    parse_body,
    parse_update,
    sign,
    verify_signature,
)

from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.errors import NotFound, PermissionDenied

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
# The simulator's own test for HTML in a description (services/grid-gateway/simulator/open311.py).
SIMULATOR_HTML = re.compile(r"<\s*(/?[a-zA-Z][^>]*|!--.*?--|![a-zA-Z][^>]*)>", re.DOTALL)


# --- states -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "state"),
    [
        ("open", "INVESTIGATING", rules.ACCEPTED),
        ("open", "ACTION_SCHEDULED", rules.DISPATCHED),
        ("open", "IN_PROGRESS", rules.HANDLED),
        ("closed", "FIXED", rules.CLOSED),
        ("closed", "NOT_COUNCILS_RESPONSIBILITY", rules.REJECTED),
        ("closed", "DUPLICATE", rules.REJECTED),
        ("open", "INTERNAL_REFERRAL", rules.RETURNED),
        ("open", "NO_FURTHER_ACTION", rules.DEFERRED),
        ("open", "REOPEN", rules.REOPENED),
        ("open", "action_scheduled", rules.DISPATCHED),
        ("closed", "", rules.CLOSED),
        ("CLOSED", "SOMETHING_NEW", rules.CLOSED),
        ("open", "", None),
        ("open", "SOMETHING_NEW", None),
    ],
)
def test_grid_stages_map_to_ticket_states(status: str, code: str, state: str | None) -> None:
    assert rules.map_update(status, code) == state


def test_every_mapped_state_is_a_ticket_state_on_the_grid() -> None:
    assert set(rules.EXTENDED_STATUS_TO_STATE.values()) <= rules.ON_THE_GRID
    assert rules.PENDING not in rules.ON_THE_GRID and rules.FAILED not in rules.ON_THE_GRID


def test_updates_are_ordered_by_time_then_id() -> None:
    later = T0 + timedelta(seconds=1)
    assert rules.is_newer(T0, "1", None, None)
    assert rules.is_newer(later, "1", T0, "9")
    assert not rules.is_newer(T0, "9", later, "1")
    # the same second: update ids decide, numerically
    assert rules.is_newer(T0, "1740794400000010", T0, "1740794400000009")
    assert not rules.is_newer(T0, "1740794400000009", T0, "1740794400000010")
    assert rules.is_newer(T0, "10", T0, "9")
    assert not rules.is_newer(T0, "9", T0, "10")
    # the same update is not newer than itself
    assert not rules.is_newer(T0, "7", T0, "7")
    # opaque ids compare as text
    assert rules.is_newer(T0, "u-b", T0, "u-a")


# --- what goes out ----------------------------------------------------------------------------


def test_descriptions_lose_html_and_keep_text() -> None:
    assert rules.clean_description("<p>垃圾 <b>堆积</b></p>") == "垃圾 堆积"
    assert rules.clean_description("a &lt;script&gt;alert(1)&lt;/script&gt; b") == "a alert(1) b"
    assert rules.clean_description("3 < 5 and 6 > 2") == "3 < 5 and 6 > 2"
    assert rules.clean_description("line one\r\n\r\n\r\n\r\nline   two\t") == "line one\n\nline two"
    assert rules.clean_description("<<b>b>x") == "x"


def test_descriptions_are_cut_at_4000_characters() -> None:
    text = rules.clean_description("路" * 5000)
    assert len(text) == 4000 and text.endswith("…")
    assert len(rules.clean_description("路" * 4000)) == 4000


@given(st.text(alphabet=st.sampled_from(list("<>/!-ab &;lgt#x0123 \n路")), max_size=300))
def test_no_description_ever_looks_like_html_to_the_platform(text: str) -> None:
    cleaned = rules.clean_description(text)
    assert not SIMULATOR_HTML.search(cleaned)
    assert len(cleaned) <= rules.MAX_DESCRIPTION


def test_location_prefers_real_coordinates() -> None:
    assert rules.location_of("宝山区淞南路1号", 31.4, 121.48) == rules.Location(31.4, 121.48, "宝山区淞南路1号")
    assert rules.location_of("宝山区淞南路1号", 0.0, 0.0) == rules.Location(None, None, "宝山区淞南路1号")
    assert rules.location_of("", 95.0, 121.0) is None
    assert rules.location_of("  ", 0.0, 0.0) is None
    assert rules.location_of("", float("nan"), 1.0) is None


def test_submission_carries_ids_and_media() -> None:
    submission = rules.build_submission(
        ticket_id="t-1",
        issue_id="i-1",
        service_code="01-02",
        description="<i>暴露垃圾</i>",
        address="",
        lat=31.4,
        lon=121.48,
        media_urls=["https://img.example/1.jpg", "ftp://bad", "https://img.example/2.jpg"],
    )
    assert submission.attributes == {"issue_id": "i-1", "ticket_id": "t-1"}
    assert submission.media_url == "https://img.example/1.jpg"
    assert submission.description == "暴露垃圾\n附件：https://img.example/2.jpg"
    assert submission.location == rules.Location(31.4, 121.48, None)
    with pytest.raises(ValueError, match=rules.LOCATION_MISSING):
        rules.build_submission(
            ticket_id="t", issue_id="i", service_code="01-02", description="", address="", lat=0, lon=0, media_urls=[]
        )


def test_long_text_with_many_photos_still_fits() -> None:
    links = [f"https://img.example/{n}.jpg" for n in range(6)]
    submission = rules.build_submission(
        ticket_id="t", issue_id="i", service_code="01-02", description="x" * 5000, address="a", lat=0, lon=0,
        media_urls=links,
    )  # fmt: skip
    assert len(submission.description) <= rules.MAX_DESCRIPTION
    assert submission.description.endswith(" ".join(links[1:]))


# --- delivery policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.ACCEPTED),
        (201, Verdict.ACCEPTED),
        (400, Verdict.REJECTED),
        (404, Verdict.REJECTED),
        (422, Verdict.REJECTED),
        (401, Verdict.UNAUTHORIZED),
        (403, Verdict.UNAUTHORIZED),
        (408, Verdict.TRANSIENT),
        (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
        (302, Verdict.TRANSIENT),
    ],
)
def test_answers_are_classified(status: int, verdict: Verdict) -> None:
    assert classify_status(status) is verdict


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 60.0), (50, 60.0)]:
        for _ in range(20):
            delay = backoff_seconds(attempt, base=1.0, cap=60.0, rng=rng)
            assert step / 2 <= delay <= step
    assert backoff_seconds(0, base=1.0, cap=60.0) == 0.0
    # jitter: replicas failing together do not retry together
    assert len({round(backoff_seconds(5, base=1.0, cap=60.0, rng=rng), 6) for _ in range(10)}) > 1


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert backoff_seconds(1, base=1.0, cap=60.0, rng=rng, retry_after=5) == 5
    assert backoff_seconds(1, base=1.0, cap=10.0, rng=rng, retry_after=3600) == 10


def test_give_up_window() -> None:
    assert should_give_up(T0, T0 + timedelta(hours=72), timedelta(hours=72))
    assert not should_give_up(T0, T0 + timedelta(hours=71), timedelta(hours=72))
    assert not should_give_up(T0, T0 + timedelta(days=365), timedelta(0))


def test_circuit_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    breaker = CircuitBreaker("district", threshold=3, cooldown=timedelta(seconds=30))
    now = T0
    for _ in range(2):
        assert breaker.allow(now)
        breaker.record_failure(now, "HTTP 503")
    assert breaker.state == CLOSED
    breaker.record_success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow(now)
        breaker.record_failure(now, "HTTP 503")
    assert breaker.state == OPEN and breaker.gauge == 2
    assert breaker.retry_at == now + timedelta(seconds=30)
    assert not breaker.allow(now + timedelta(seconds=29))
    assert breaker.wait_seconds(now + timedelta(seconds=20)) == 10
    # after the cooldown: exactly one probe
    probe_time = now + timedelta(seconds=30)
    assert breaker.allow(probe_time)
    assert breaker.state == HALF_OPEN
    assert not breaker.allow(probe_time)
    # the probe fails: open again, a new cooldown
    breaker.record_failure(probe_time, "timeout")
    assert breaker.state == OPEN and breaker.opened_at == probe_time
    assert not breaker.allow(probe_time + timedelta(seconds=1))
    # the next probe succeeds: closed, and it says so (the backlog may go)
    assert breaker.allow(probe_time + timedelta(seconds=30))
    assert breaker.record_success() is True
    assert breaker.state == CLOSED and breaker.consecutive_failures == 0
    assert breaker.record_success() is False


def test_an_unused_probe_slot_is_given_back() -> None:
    breaker = CircuitBreaker("district", threshold=1, cooldown=timedelta(seconds=5))
    breaker.record_failure(T0)
    assert breaker.allow(T0 + timedelta(seconds=5))
    breaker.release_probe()
    assert breaker.allow(T0 + timedelta(seconds=5))


def test_token_bucket_bounds_the_send_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.0) == pytest.approx(0.2)
    # one second later the bucket is full again (but not over the burst)
    assert [bucket.take(1.5) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(1.5) > 0
    assert TokenBucket(rate=0, burst=1).take(0.0) == 0.0


# --- pushed updates ---------------------------------------------------------------------------

SECRET = "s3cret"
BODY = b'{"update_id":"1","service_request_id":"G-1","status":"open","updated_datetime":"2026-03-01T10:00:00+08:00"}'


def test_a_fresh_good_signature_passes() -> None:
    stamp = int(T0.timestamp())
    verify_signature(SECRET, str(stamp), sign(SECRET, stamp, BODY), BODY, T0.timestamp() + 299, 300)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "code"),
    [
        (None, "sha256=00", BODY, "signature_missing"),
        ("1772330400", None, BODY, "signature_missing"),
        ("17723304OO", "sha256=00", BODY, "signature_invalid"),
        ("1772330400", sign("other", "1772330400", BODY), BODY, "signature_invalid"),
        ("1772330400", sign(SECRET, "1772330400", BODY), BODY + b" ", "signature_invalid"),
        ("1772330400", sign(SECRET, "1772330401", BODY), BODY, "signature_invalid"),
        ("1772326000", sign(SECRET, "1772326000", BODY), BODY, "signature_stale"),
        ("1772339000", sign(SECRET, "1772339000", BODY), BODY, "signature_stale"),
    ],
)
def test_forged_or_stale_signatures_are_refused(
    timestamp: str | None, signature: str | None, body: bytes, code: str
) -> None:
    with pytest.raises(Refused) as refused:
        verify_signature(SECRET, timestamp, signature, body, 1772330400.0, 300)
    assert refused.value.code == code and refused.value.status == 401


def test_api_key_must_match() -> None:
    check_api_key("key", "key")
    for wrong in ("nope", None, 7, ""):
        with pytest.raises(Refused) as refused:
            check_api_key("key", wrong)
        assert refused.value.status == 403


def test_updates_are_parsed_with_zones() -> None:
    update = parse_update(
        {
            "update_id": "1740794400123457",
            "service_request_id": "G3FA9C1-000001",
            "status": "OPEN",
            "updated_datetime": "2026-03-01T10:00:00+08:00",
            "external_status_code": "action_scheduled",
            "description": "已派遣",
            "media_url": None,
        }
    )
    assert update.updated_at == T0
    assert update.status == "open" and update.external_status_code == "ACTION_SCHEDULED"
    assert update.media_url == ""
    for broken in (
        {"service_request_id": "G", "updated_datetime": "2026-03-01T10:00:00Z"},
        {"update_id": "1", "updated_datetime": "2026-03-01T10:00:00Z"},
        {"update_id": "1", "service_request_id": "G", "updated_datetime": "2026-03-01T10:00:00"},
        {"update_id": "1", "service_request_id": "G", "updated_datetime": "yesterday"},
        {"update_id": ["1"], "service_request_id": "G", "updated_datetime": "2026-03-01T10:00:00Z"},
    ):
        with pytest.raises(ValueError):
            parse_update(broken)  # type: ignore[arg-type]


def test_bodies_are_json_or_forms() -> None:
    assert parse_body(b'{"a": "1"}', "application/json; charset=utf-8") == {"a": "1"}
    assert parse_body(b"a=1&b=%E5%9E%83", "application/x-www-form-urlencoded") == {"a": "1", "b": "垃"}
    for bad in (b"[1, 2]", b"\xff\xfe", b"{"):
        with pytest.raises(Refused) as refused:
            parse_body(bad, "application/json")
        assert refused.value.status == 400


# --- access -----------------------------------------------------------------------------------


def who(*roles: str, subject: str = "p-1") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def test_operators_see_everything_and_district_staff_their_district() -> None:
    assert access.visible_districts(who("operator@*")) is None
    assert access.visible_districts(who("service@*", subject="svc:issues")) is None
    staff = who("district_staff@d:D1")
    assert access.visible_districts(staff) == {"D1"}
    access.ensure_may_view(staff, "D1")
    with pytest.raises(NotFound):
        access.ensure_may_view(staff, "D2")
    with pytest.raises(NotFound):
        access.ensure_may_view(staff, None)
    assert access.ensure_may_filter_district(staff, "") == {"D1"}
    assert access.ensure_may_filter_district(staff, "D1") == {"D1"}
    with pytest.raises(PermissionDenied) as denied:
        access.ensure_may_filter_district(staff, "D2")
    assert denied.value.code == "not_your_district"


@pytest.mark.parametrize(
    "roles",
    [("resident@n:N1",), ("cadre@n:N1", "secretary@n:N1"), ("subdistrict_staff@s:S1",), ("grid_platform@*",), ()],
)
def test_nobody_else_sees_grid_tickets(roles: tuple[str, ...]) -> None:
    with pytest.raises(PermissionDenied) as denied:
        access.visible_districts(who(*roles))
    assert denied.value.code == "grid_staff_only"


def test_only_people_in_charge_retry() -> None:
    access.ensure_may_act(who("operator@*"), None)
    access.ensure_may_act(who("district_staff@d:D1"), "D1")
    with pytest.raises(NotFound):
        access.ensure_may_act(who("district_staff@d:D1"), "D2")
    with pytest.raises(PermissionDenied):
        access.ensure_may_act(who("service@*", subject="svc:issues"), "D1")
    with pytest.raises(PermissionDenied):
        access.ensure_operator(who("district_staff@d:D1"))


# --- catalogue --------------------------------------------------------------------------------


def test_catalogue_file_with_default_and_district_entries() -> None:
    specs = parse_catalogue_file(
        """{"default": {"categories": {"rubbish": "01-02"}},
            "districts": {"D1": {"services": [{"service_code": "SH-0101", "service_name": "乱涂写"}],
                                 "categories": {"graffiti": "SH-0101"}}}}"""
    )
    assert specs[DEFAULT_KEY].services is None  # from the platform's services.json
    assert specs[DEFAULT_KEY].categories == {"rubbish": "01-02"}
    assert [s.service_code for s in specs["D1"].services or ()] == ["SH-0101"]
    bare = parse_catalogue_file('[{"service_code": "01-02", "service_name": "暴露垃圾", "group": "市容环境"}]')
    assert bare[DEFAULT_KEY].services and bare[DEFAULT_KEY].services[0].group == "市容环境"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "42",
        '[{"service_code": "01-02"}]',
        '{"default": {"categories": {"a": ""}}}',
        '{"districts": []}',
        '{"districts": {"D1": "x"}}',
        '{"default": {"services": {}}}',
    ],
)
def test_broken_catalogue_files_are_refused(text: str) -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue_file(text)


def test_services_json_is_parsed_and_deduplicated() -> None:
    services = parse_services(
        [
            {"service_code": "01-02", "service_name": "暴露垃圾", "keywords": "垃圾", "type": "realtime"},
            {"service_code": "01-02", "service_name": "暴露垃圾（新）"},
        ]
    )
    assert len(services) == 1 and services[0].service_name == "暴露垃圾（新）"


def test_service_code_resolution() -> None:
    known = {"01-02", "04-02"}
    assert resolve_service_code("01-02", "rubbish", known, {}) == "01-02"
    assert resolve_service_code("", "water_main", known, {"water_main": "04-02"}) == "04-02"
    assert resolve_service_code("", "01-02", known, {}) == "01-02"
    # nothing loaded yet: trust what we were given, the platform will judge
    assert resolve_service_code("99-99", "x", None, {}) == "99-99"
    unknown = [("99-99", "x", known), ("", "unmapped", known), ("", "x", None), ("9" * 65, "", None)]
    for requested, category, codes in unknown:
        with pytest.raises(ValueError, match=rules.SERVICE_CODE_UNKNOWN):
            resolve_service_code(requested, category, codes, {})
