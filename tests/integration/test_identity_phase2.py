"""Identity, phase 2, through the gateway: QR join codes, SMS-code sign-in and throttling per phone and per
client address, ended sessions refused everywhere, the audited ID-number reveal, no personal data in logs,
CSV imports, the volunteer badge from the volunteers' events, moving house, name corrections, party badges."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
from shequtong_stack import GATEWAY, Stack

from integration.helpers import eventually, publish_event, publish_events, stream_messages
from integration.people import (
    PASSWORD,
    Community,
    Person,
    create_join_code,
    create_person,
    login,
    login_with_code,
    new_neighbourhood_with_people,
    register,
    register_and_verify,
    sign_in,
    sms_code,
)
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev
from shequtong_kit.testing import dies_with_parent, free_port


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    return new_neighbourhood_with_people(api, ops_headers)


@pytest.fixture
def move_clock(workdir: Path) -> Iterator[object]:
    path = workdir / "clock-offset"

    def move(seconds: float) -> None:
        path.write_text(str(seconds))

    yield move
    path.write_text("0")


@pytest.fixture(scope="module")
def proxied_api(system: Stack) -> Iterator[httpx.Client]:
    """A second gateway that trusts 127.0.0.1 as a proxy, so a test can speak from many client addresses
    (X-Forwarded-For) without throttling the address every other test uses."""
    port = free_port()
    env = {
        **os.environ,
        **system.env_for(GATEWAY.name),
        "HTTP_PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "OTEL_SERVICE_NAME": "api-gateway-proxied",
    }
    log_path = system.workdir / "api-gateway-proxied.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", "shequtong_api_gateway"]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(
            lambda: proc.poll() is not None or _healthy(f"http://127.0.0.1:{port}/healthz"),
            timeout=120,
            what="the second gateway answering",
        )
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def claims(token: str) -> dict[str, object]:
    import base64

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def test_join_code_qr_images_encode_the_join_url(api: httpx.Client, system: Stack, community: Community) -> None:
    code = create_join_code(api, community.secretary.headers, community.neighbourhood_id)
    url = f"{system.gateway_url}/join/{code}"
    described = api.get(f"/v1/join-codes/{code}", headers=community.cadre.headers).json()
    assert described["join_url"] == url and described["usable"] is True

    png = api.get(f"/v1/join-codes/{code}/qr.png", params={"scale": 4, "border": 2}, headers=community.cadre.headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="png", scale=4, border=2)
    assert png.content == expected.getvalue(), "the PNG encodes the join URL"

    svg = api.get(f"/v1/join-codes/{code}/qr.svg", headers=community.secretary.headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content[:200]
    expected = io.BytesIO()
    segno.make(url, error="m", micro=False).save(expected, kind="svg", scale=8, border=4)
    assert svg.content == expected.getvalue(), "the SVG encodes the join URL"
    wrong = io.BytesIO()
    segno.make(url + "X", error="m", micro=False).save(wrong, kind="svg", scale=8, border=4)
    assert svg.content != wrong.getvalue()

    # Only the neighbourhood's committee prints it.
    for outsider in (community.resident, community.other_cadre, community.district_staff):
        refused = api.get(f"/v1/join-codes/{code}/qr.png", headers=outsider.headers)
        assert refused.status_code == 403, refused.text
    assert api.get(f"/v1/join-codes/{code}/qr.svg").status_code == 401
    api.post(f"/v1/join-codes/{code}/revoke", headers=community.secretary.headers)
    dead = api.get(f"/v1/join-codes/{code}/qr.png", headers=community.secretary.headers)
    assert dead.status_code == 409 and dead.json()["code"] == "join_code_not_usable"


def test_sign_in_with_an_sms_code(api: httpx.Client, workdir: Path, community: Community, move_clock: object) -> None:
    person = register_and_verify(api, community.join_code, community.cadre.headers, signed_in=False)
    asked = api.post("/v1/auth/login-code", json={"phone": person.phone})
    assert asked.status_code == 202 and asked.json() == {"expires_in": 300, "resend_after": 60}
    code = sms_code(workdir, person.phone)
    assert code is not None and len(code) == 6

    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    bad = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": wrong})
    assert bad.status_code == 401 and bad.json()["code"] == "code_invalid"
    ok = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": code})
    assert ok.status_code == 200, ok.text
    token = claims(ok.json()["access_token"])
    assert token["sub"] == person.person_id and f"resident@n:{community.neighbourhood_id}" in token["roles"]  # type: ignore[operator]
    again = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": code})
    assert again.status_code == 401 and again.json()["code"] == "code_invalid", "a code signs in once"

    # One code a minute per phone.
    soon = api.post("/v1/auth/login-code", json={"phone": person.phone})
    assert soon.status_code == 429 and soon.json()["code"] == "code_requested_too_soon"
    assert person.phone not in soon.text

    # Five wrong tries spend the code, even for the right one afterwards.
    move_clock(61)  # type: ignore[operator]
    assert api.post("/v1/auth/login-code", json={"phone": person.phone}).status_code == 202
    second = sms_code(workdir, person.phone)
    assert second is not None
    wrong = str((int(second) + 1) % 1_000_000).zfill(6)
    for _ in range(5):
        tried = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": wrong})
        assert tried.json()["code"] == "code_invalid"
    spent = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": second})
    assert spent.status_code == 429 and spent.json()["code"] == "code_attempts_exhausted"

    # A code lives five minutes.
    move_clock(122)  # type: ignore[operator]
    assert api.post("/v1/auth/login-code", json={"phone": person.phone}).status_code == 202
    third = sms_code(workdir, person.phone)
    move_clock(122 + 301)  # type: ignore[operator]
    late = api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": third})
    assert late.status_code == 401 and late.json()["code"] == "code_expired"

    # An unregistered phone gets the same answer and no message.
    stranger = "1390" + str(random.randrange(10**6, 10**7))
    same = api.post("/v1/auth/login-code", json={"phone": stranger})
    assert same.status_code == 202 and same.json() == asked.json()
    assert sms_code(workdir, stranger) is None


def test_failed_sign_ins_and_code_requests_are_throttled_per_client_address(
    api: httpx.Client, proxied_api: httpx.Client, community: Community
) -> None:
    resident = community.residents[1]
    address = f"198.51.100.{random.randrange(1, 255)}"
    other_address = f"203.0.113.{random.randrange(1, 255)}"
    from_address = {"X-Forwarded-For": address}
    # A trusted proxy's X-Forwarded-For names the client: its failures count against that address only.
    for index in range(50):
        failed = proxied_api.post(
            "/v1/auth/login", json={"phone": f"100{index:08d}", "password": "guess"}, headers=from_address
        )
        assert failed.status_code == 401, failed.text
    blocked = proxied_api.post(
        "/v1/auth/login", json={"phone": resident.phone, "password": PASSWORD}, headers=from_address
    )
    assert blocked.status_code == 429 and blocked.json()["code"] == "address_throttled"
    by_code = proxied_api.post(
        "/v1/auth/login-with-code", json={"phone": resident.phone, "code": "123456"}, headers=from_address
    )
    assert by_code.status_code == 429 and by_code.json()["code"] == "address_throttled"
    elsewhere = proxied_api.post(
        "/v1/auth/login",
        json={"phone": resident.phone, "password": PASSWORD},
        headers={"X-Forwarded-For": other_address},
    )
    assert elsewhere.status_code == 200, elsewhere.text
    # The public gateway trusts no proxy: a forged X-Forwarded-For changes nothing there.
    direct = api.post("/v1/auth/login", json={"phone": resident.phone, "password": PASSWORD}, headers=from_address)
    assert direct.status_code == 200, direct.text

    # Code requests: 30 an hour per address, whichever phones they name.
    spammer = {"X-Forwarded-For": f"192.0.2.{random.randrange(1, 255)}"}
    for _ in range(30):
        phone = "1390" + str(random.randrange(10**6, 10**7))
        assert proxied_api.post("/v1/auth/login-code", json={"phone": phone}, headers=spammer).status_code == 202
    refused = proxied_api.post("/v1/auth/login-code", json={"phone": resident.phone}, headers=spammer)
    assert refused.status_code == 429 and refused.json()["code"] == "address_throttled"


# boards.ListBoards called directly over gRPC, from a child process: this pytest process keeps no gRPC
# threads of its own, so the processes later tests start are forked safely. One JSON request per line.
BOARDS_PROBE = """
import asyncio, ctypes, json, signal, sys
ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
import grpc
from shequtong.boards.v1 import boards_pb2, boards_pb2_grpc
from shequtong_kit.errors import error_info

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        stub = boards_pb2_grpc.BoardsServiceStub(channel)
        for line in sys.stdin:
            ask = json.loads(line)
            try:
                await stub.ListBoards(
                    boards_pb2.ListBoardsRequest(neighbourhood_id=ask["neighbourhood_id"]),
                    metadata=(("authorization", "Bearer " + ask["token"]),),
                    timeout=10,
                )
                answer = "ok"
            except grpc.aio.AioRpcError as exc:
                answer = error_info(exc)[0]
            print(answer, flush=True)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def list_boards(system: Stack) -> Iterator[object]:
    """list_boards(neighbourhood_id, token) → "ok" or the error code, as boards answers over gRPC."""
    probe = subprocess.Popen(
        [sys.executable, "-c", BOARDS_PROBE, system.addr("boards")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def ask(neighbourhood_id: str, token: str) -> str:
        assert probe.stdin is not None and probe.stdout is not None
        probe.stdin.write(json.dumps({"neighbourhood_id": neighbourhood_id, "token": token}) + "\n")
        probe.stdin.flush()
        return probe.stdout.readline().strip()

    try:
        yield ask
    finally:
        probe.terminate()
        probe.wait(30)


def test_an_ended_session_is_refused_by_the_gateway_and_by_other_services(
    api: httpx.Client, system: Stack, community: Community, list_boards: Any
) -> None:
    resident = community.residents[0]
    n = community.neighbourhood_id
    for ending in ("logout", "replayed refresh token"):
        tokens = login(api, resident.phone, PASSWORD)
        access = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert api.get(f"/v1/neighbourhoods/{n}/boards", headers=access).status_code == 200
        assert list_boards(n, tokens["access_token"]) == "ok"
        if ending == "logout":
            assert api.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
        else:
            assert api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
            replay = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert replay.json()["code"] == "refresh_token_reused"

        def refused_by_gateway(access: dict[str, str] = access) -> bool:
            reply = api.get(f"/v1/neighbourhoods/{n}/boards", headers=access)
            return reply.status_code == 401 and reply.json()["code"] == "session_revoked"

        eventually(refused_by_gateway, timeout=30, what=f"the gateway refusing the ended session ({ending})")
        eventually(
            lambda t=tokens["access_token"]: list_boards(n, t) == "session_revoked",  # type: ignore[misc]
            timeout=30,
            what=f"boards refusing the ended session ({ending})",
        )
    # Other sessions of the same person are untouched.
    assert list_boards(n, resident.access_token) == "ok"
    events = [
        identity_ev.SessionRevoked.FromString(payload)
        for _, _, payload in stream_messages(system.nats_url, "IDENTITY", "identity.session.revoked")
    ]
    mine = {e.reason for e in events if e.person_id == resident.person_id}
    assert {"logout", "refresh_token_reused"} <= mine


def test_revealing_an_id_number_is_for_the_committee_and_audited(
    api: httpx.Client, ops_headers: dict[str, str], community: Community
) -> None:
    resident = community.residents[0]
    url = f"/v1/people/{resident.person_id}/id-number/reveal"
    body = {"neighbourhood_id": community.neighbourhood_id, "reason": "核对低保申请材料"}
    shown = api.post(url, json=body, headers=community.cadre.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["id_number"] == resident.id_number
    assert shown.headers["cache-control"] == "no-store"
    reveal_id = shown.json()["reveal_id"]

    for outsider in (
        community.other_cadre,
        community.district_staff,
        community.subdistrict_staff,
        community.residents[1],
    ):
        refused = api.post(url, json=body, headers=outsider.headers)
        assert refused.status_code == 403 and refused.json()["code"] == "not_committee", refused.text
        assert resident.id_number not in refused.text
    assert api.post(url, json=body, headers=ops_headers).status_code == 403
    no_reason = api.post(
        url, json={"neighbourhood_id": community.neighbourhood_id, "reason": ""}, headers=community.cadre.headers
    )
    assert no_reason.status_code == 422
    # Someone who never registered here is not found here.
    elsewhere = api.post(
        f"/v1/people/{community.other_resident.person_id}/id-number/reveal", json=body, headers=community.cadre.headers
    )
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "person_not_found"

    def entries(headers: dict[str, str], **params: str) -> list[dict[str, object]]:
        reply = api.get("/v1/id-number-reveals", params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["items"]  # type: ignore[no-any-return]

    for staff, region in (
        (community.district_staff, community.district_id),
        (community.subdistrict_staff, community.subdistrict_id),
        (community.district_staff, community.neighbourhood_id),
    ):
        entry = next(e for e in entries(staff.headers, region_id=region) if e["id"] == reveal_id)
        assert entry["person_id"] == resident.person_id and entry["revealed_by"] == community.cadre.person_id
        assert entry["reason"] == "核对低保申请材料" and entry["revealed_at"]
        assert resident.id_number not in json.dumps(entry)
    assert reveal_id in {e["id"] for e in entries(resident.headers, person_id=resident.person_id)}
    for nosy in (community.cadre, community.other_cadre, community.residents[1]):
        refused = api.get("/v1/id-number-reveals", params={"region_id": community.district_id}, headers=nosy.headers)
        assert refused.status_code == 403


def test_no_personal_data_in_any_service_log(
    api: httpx.Client, system: Stack, workdir: Path, community: Community
) -> None:
    person, reply = register(api, community.join_code, party_member=True)
    assert reply.status_code == 201
    api.post(
        f"/v1/memberships/{person.membership_id}/verify",
        json={"confirm_party_member": True},
        headers=community.cadre.headers,
    )
    sign_in(api, person)
    login_with_code(api, workdir, person)
    api.post(
        f"/v1/people/{person.person_id}/id-number/reveal",
        json={"neighbourhood_id": community.neighbourhood_id, "reason": "核对"},
        headers=community.secretary.headers,
    )
    api.post("/v1/auth/login", json={"phone": person.phone, "password": "wrong-password"})
    duplicate = api.post(
        "/v1/registrations",
        json={
            "join_code": community.join_code,
            "real_name": person.real_name,
            "phone": person.phone,
            "id_number": person.id_number,
            "password": PASSWORD,
            "address": {"building": "1", "room": "1"},
        },
    )
    assert duplicate.status_code == 409
    logs = system.logs()
    assert logs["identity"], "identity writes logs"
    for name, text in logs.items():
        assert person.id_number not in text, f"ID number in the {name} log"
        assert person.phone not in text, f"phone number in the {name} log"


def test_bulk_import_of_a_region_tree_and_households(
    api: httpx.Client, ops_headers: dict[str, str], community: Community
) -> None:
    s = uuid.uuid4().hex[:8]
    rows = [f"district,IMP{s},导入区{s},,", f"subdistrict,IMP{s}-S1,一街道,IMP{s},", f"镇,IMP{s}-S2,二镇,IMP{s},"]
    rows += [f"neighbourhood,IMP{s}-N{i:02d},第{i}居委,IMP{s}-S1,residential" for i in range(12)]
    rows += [f"村,IMP{s}-V{i:02d},第{i}村,IMP{s}-S2," for i in range(8)]
    tree = ("level,code,name,parent_code,kind\n" + "\n".join(rows) + "\n").encode()
    csv_headers = {**ops_headers, "Content-Type": "text/csv"}

    dry = api.post("/v1/imports/regions", params={"dry_run": "true"}, content=tree, headers=csv_headers)
    assert dry.status_code == 200 and dry.json()["applied"] is False and dry.json()["created"] == 23
    done = api.post("/v1/imports/regions", content=tree, headers=csv_headers)
    assert done.status_code == 200, done.text
    assert (done.json()["rows"], done.json()["created"], done.json()["skipped"], done.json()["applied"]) == (
        23,
        23,
        0,
        True,
    )
    again = api.post("/v1/imports/regions", files={"file": ("tree.csv", tree, "text/csv")}, headers=ops_headers)
    assert again.status_code == 200 and (again.json()["created"], again.json()["skipped"]) == (0, 23)

    district_id = next(r["id"] for r in _all_regions(api, ops_headers, level="district") if r["code"] == f"IMP{s}")
    subdistricts = {r["code"]: r for r in _all_regions(api, ops_headers, parent_id=district_id)}
    assert set(subdistricts) == {f"IMP{s}-S1", f"IMP{s}-S2"}
    villages = _all_regions(api, ops_headers, parent_id=subdistricts[f"IMP{s}-S2"]["id"])
    assert len(villages) == 8 and {r["kind"] for r in villages} == {"village"}
    assert {r["district_id"] for r in villages} == {district_id}
    # Every new neighbourhood was announced: boards opened its catalogue.
    some = villages[0]["id"]
    eventually(
        lambda: len(api.get(f"/v1/neighbourhoods/{some}/boards", headers=ops_headers).json()) == 10,
        timeout=60,
        what="boards opened for an imported neighbourhood",
    )

    # A file with one bad row writes nothing, and says where.
    bad = (
        f"district,IMP{s}-X,新区,,\nsubdistrict,IMP{s}-XS,街道,NOPE{s},\nneighbourhood,IMP{s}-XN,居委,IMP{s}-S1,farm\n"
    ).encode()
    refused = api.post("/v1/imports/regions", content=bad, headers=csv_headers)
    assert refused.status_code == 422 and refused.json()["code"] == "import_rows_invalid"
    errors = refused.json()["report"]["errors"]
    assert [(e["row"], e["code"]) for e in errors] == [(2, "parent_not_found"), (3, "kind_invalid")]
    alone = api.post("/v1/imports/regions", content=f"district,IMP{s}-X,新区,,\n".encode(), headers=csv_headers)
    assert alone.json()["created"] == 1, "the valid row of the refused file had not been written"

    households = (
        "neighbourhood_code,building,unit,room,village_group,house_number\n"
        + "".join(f"IMP{s}-N00,{b}号楼,1,{r}01,,\n" for b in range(1, 4) for r in range(1, 6))
        + "".join(f"IMP{s}-V00,,,,{g}组,{h}号\n" for g in range(1, 3) for h in range(1, 6))
        + f"IMP{s}-N00,1号楼,1,101,,\n"
    ).encode()
    imported = api.post(
        "/v1/imports/households", files={"file": ("hh.csv", households, "text/csv")}, headers=ops_headers
    )
    assert imported.status_code == 200, imported.text
    assert (imported.json()["rows"], imported.json()["created"], imported.json()["skipped"]) == (26, 25, 1)
    rerun = api.post("/v1/imports/households", content=households, headers=csv_headers)
    assert (rerun.json()["created"], rerun.json()["skipped"]) == (0, 26)
    residential = _all_regions(api, ops_headers, parent_id=subdistricts[f"IMP{s}-S1"]["id"])
    n00 = next(r["id"] for r in residential if r["code"] == f"IMP{s}-N00")
    listed = api.get(f"/v1/neighbourhoods/{n00}/households", params={"page_size": 100}, headers=ops_headers).json()
    assert len(listed["items"]) == 15

    unknown = api.post("/v1/imports/households", content=b"NOPE,1,,1,,\n", headers=csv_headers)
    assert unknown.status_code == 422 and unknown.json()["report"]["errors"][0]["code"] == "neighbourhood_not_found"
    not_operator = api.post(
        "/v1/imports/regions", content=tree, headers={**community.secretary.headers, "Content-Type": "text/csv"}
    )
    assert not_operator.status_code == 403 and not_operator.json()["code"] == "operator_only"
    wrong_type = api.post("/v1/imports/regions", json={"csv": "x"}, headers=ops_headers)
    assert wrong_type.status_code == 415


def _all_regions(api: httpx.Client, headers: dict[str, str], **params: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    cursor = None
    while True:
        query = {**params, "page_size": "100", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/regions", params=query, headers=headers).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def _roles(api: httpx.Client, person: Person, include_revoked: bool = False) -> list[dict[str, object]]:
    reply = api.get(
        "/v1/roles",
        params={"person_id": person.person_id, "include_revoked": str(include_revoked).lower(), "page_size": 100},
        headers=person.headers,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]  # type: ignore[no-any-return]


def test_the_volunteer_badge_follows_the_volunteers_service(
    api: httpx.Client, system: Stack, community: Community
) -> None:
    person = community.residents[1]
    n = community.neighbourhood_id
    scope = f"n:{n}"

    def badges(include_revoked: bool = False) -> list[dict[str, object]]:
        return [g for g in _roles(api, person, include_revoked) if g["role"] == "volunteer" and g["scope"] == scope]

    def emit(subject: str, message: object) -> str:
        return publish_events(system.nats_url, [(subject, message)], source="/shequtong/volunteers")[0]

    approved_subject, left_subject = "volunteers.volunteer.approved", "volunteers.volunteer.left"
    team_a, team_b = str(uuid.uuid4()), str(uuid.uuid4())
    vol_a, vol_b = str(uuid.uuid4()), str(uuid.uuid4())
    approved = volunteers_ev.VolunteerApproved(
        volunteer_id=vol_a, person_id=person.person_id, neighbourhood_id=n, team_id=team_a
    )
    event_id = emit(approved_subject, approved)
    granted = eventually(badges, timeout=30, what="the volunteer badge granted")
    assert len(granted) == 1 and granted[0]["granted_by"] == "svc:volunteers"
    # The same event again (a fresh message id: past the stream's dedupe, stopped by the inbox) and a copy
    # under another event id (stopped by the volunteer record): still one grant.
    payload = approved.SerializeToString()
    assert not publish_event(system.nats_url, approved_subject, payload, event_id, msg_id=str(uuid.uuid4()))
    emit(approved_subject, approved)
    # A second team; leaving the first keeps the badge, leaving both removes it.
    emit(
        approved_subject,
        volunteers_ev.VolunteerApproved(
            volunteer_id=vol_b, person_id=person.person_id, neighbourhood_id=n, team_id=team_b
        ),
    )
    emit(left_subject, volunteers_ev.VolunteerLeft(volunteer_id=vol_a, person_id=person.person_id, neighbourhood_id=n))
    # The consumer handles events in order: once a later one (another person's) shows, the ones before have.
    other = community.residents[0]
    emit(
        approved_subject,
        volunteers_ev.VolunteerApproved(volunteer_id=str(uuid.uuid4()), person_id=other.person_id, neighbourhood_id=n),
    )
    eventually(
        lambda: any(g["role"] == "volunteer" for g in _roles(api, other)), timeout=30, what="a later event handled"
    )
    assert len(badges()) == 1 and len(badges(include_revoked=True)) == 1, "one grant, kept while team B remains"
    emit(left_subject, volunteers_ev.VolunteerLeft(volunteer_id=vol_b, person_id=person.person_id, neighbourhood_id=n))
    eventually(lambda: not badges(), timeout=30, what="the badge revoked when no team remains")
    revoked = badges(include_revoked=True)
    assert len(revoked) == 1 and revoked[0]["revoked"] is True and revoked[0]["revoked_by"] == "svc:volunteers"
    assert f"volunteer@{scope}" not in claims(sign_in(api, person).access_token)["roles"]  # type: ignore[operator]


def test_moving_house_and_correcting_a_name_announce_the_profile_change(
    api: httpx.Client, system: Stack, community: Community
) -> None:
    mover = register_and_verify(api, community.join_code, community.cadre.headers)
    new_room = str(random.randrange(100, 999))
    moved = api.post(
        f"/v1/memberships/{mover.membership_id}/move",
        json={"address": {"building": "9号楼", "unit": "3", "room": new_room}},
        headers=mover.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["address"]["room"] == new_room and moved.json()["state"] == "verified"
    household = moved.json()["household_id"]
    outsider = api.post(
        f"/v1/memberships/{mover.membership_id}/move",
        json={"household_id": household},
        headers=community.other_cadre.headers,
    )
    assert outsider.status_code == 404
    elsewhere = api.post(
        f"/v1/memberships/{mover.membership_id}/move",
        json={"household_id": str(uuid.uuid4())},
        headers=mover.headers,
    )
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "household_not_found"

    corrected = mover.real_name[0] + "新名"
    self_fix = api.patch(
        f"/v1/people/{mover.person_id}", json={"real_name": corrected, "reason": "改名"}, headers=mover.headers
    )
    assert self_fix.status_code == 403 and self_fix.json()["code"] == "self_update"
    other_fix = api.patch(
        f"/v1/people/{mover.person_id}",
        json={"real_name": corrected, "reason": "改名"},
        headers=community.other_cadre.headers,
    )
    assert other_fix.status_code == 403
    fixed = api.patch(
        f"/v1/people/{mover.person_id}",
        json={"real_name": corrected, "reason": "录入有误"},
        headers=community.cadre.headers,
    )
    assert fixed.status_code == 200 and fixed.json()["display_name"] == mover.real_name[0] + "**"
    assert api.get("/v1/me", headers=mover.headers).json()["person"]["real_name"] == corrected

    def announced() -> list[identity_ev.PersonProfileUpdated]:
        found = [
            identity_ev.PersonProfileUpdated.FromString(payload)
            for _, _, payload in stream_messages(system.nats_url, "IDENTITY", "identity.person.updated")
        ]
        return [e for e in found if e.person_id == mover.person_id]

    updates = eventually(lambda: len(announced()) >= 2 and announced(), timeout=30, what="profile updates published")
    move_event = next(e for e in updates if "household" in e.changed)
    assert move_event.household_id == household and move_event.neighbourhood_id == community.neighbourhood_id
    assert move_event.previous_household_id and move_event.previous_household_id != household
    name_event = next(e for e in updates if "real_name" in e.changed)
    assert name_event.display_name == mover.real_name[0] + "**" and name_event.updated_by == community.cadre.person_id
    assert mover.phone not in str(updates) and corrected not in str(updates)


def test_a_cadre_confirms_a_party_member_badge(
    api: httpx.Client, ops_headers: dict[str, str], community: Community
) -> None:
    member = register_and_verify(api, community.join_code, community.cadre.headers)
    url = f"/v1/memberships/{member.membership_id}/confirm-party-member"
    assert api.post(url, headers=member.headers).status_code == 403
    assert api.post(url, headers=community.other_cadre.headers).status_code == 403
    keyed = {**community.cadre.headers, "Idempotency-Key": uuid.uuid4().hex}
    confirmed = api.post(url, json={"reason": "组织关系已转入"}, headers=keyed)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["role"] == "party_member" and confirmed.json()["membership"]["party_member_claimed"] is True
    retried = api.post(url, json={"reason": "组织关系已转入"}, headers=keyed)
    assert retried.status_code == 200 and retried.json()["grant_id"] == confirmed.json()["grant_id"]
    twice = api.post(url, headers=community.secretary.headers)
    assert twice.status_code == 409 and twice.json()["code"] == "role_already_granted"
    assert f"party_member@n:{community.neighbourhood_id}" in claims(sign_in(api, member).access_token)["roles"]  # type: ignore[operator]

    pending, reply = register(api, community.join_code)
    assert reply.status_code == 201
    early = api.post(f"/v1/memberships/{pending.membership_id}/confirm-party-member", headers=community.cadre.headers)
    assert early.status_code == 409 and early.json()["code"] == "membership_not_verified"
    # The badge by plain role grant is for verified residents too.
    staff = create_person(api, ops_headers)
    not_resident = api.post(
        "/v1/roles",
        json={"person_id": staff.person_id, "role": "party_member", "scope": f"n:{community.neighbourhood_id}"},
        headers=community.cadre.headers,
    )
    assert not_resident.status_code == 409 and not_resident.json()["code"] == "not_a_resident"
