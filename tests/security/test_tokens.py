"""Token attacks, against the gateway AND directly against services over gRPC (the gateway is not the
only wall): expired, `alg: none`, a key identity never published, tampered claims, a replayed refresh
token, a session ended by logout."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from integration.helpers import eventually
from integration.people import PASSWORD, login
from shequtong_stack import Stack

from security.world import World
from shequtong.boards.v1 import boards_pb2, boards_pb2_grpc
from shequtong.gridgateway.v1 import gridgateway_pb2, gridgateway_pb2_grpc
from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong.insights.v1 import insights_pb2, insights_pb2_grpc
from shequtong.issues.v1 import issues_pb2, issues_pb2_grpc
from shequtong.volunteers.v1 import volunteers_pb2, volunteers_pb2_grpc
from shequtong_kit.errors import error_info


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def real_key(system: Stack) -> tuple[str, Any]:
    first = json.loads(system.secrets.signing_keys)[0]
    return first["kid"], load_pem_private_key(first["pem"].encode(), password=None)


def forged(system: Stack, token: str) -> dict[str, str]:
    """Each attack: a token a client could send, derived from a genuine one."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    kid, key = real_key(system)
    now = int(time.time())
    head, payload, signature = token.split(".")
    tampered = {**claims, "roles": [*claims.get("roles", []), "operator@*"]}
    return {
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "alg_none": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{payload}.",
        "alg_none_no_sig": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{b64(tampered)}.",
        "hs256_with_public_key": jwt.encode(
            tampered, "public-key-as-hmac-secret-" + kid, algorithm="HS256", headers={"kid": kid}
        ),
        "wrong_key_same_kid": jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}),
        "unknown_kid": jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "attacker-1"}
        ),
        "tampered_claims": f"{head}.{b64(tampered)}.{signature}",
        "wrong_audience": jwt.encode({**claims, "aud": "elsewhere"}, key, algorithm="EdDSA", headers={"kid": kid}),
        "refresh_as_access": jwt.encode({**claims, "typ": "refresh"}, key, algorithm="EdDSA", headers={"kid": kid}),
        "garbage": "not.a.token",
    }


@pytest.fixture(scope="module")
def attacks(system: Stack, world: World) -> dict[str, str]:
    return forged(system, world.a.residents[1].access_token)


def test_forged_tokens_are_refused_by_the_gateway(api: httpx.Client, world: World, attacks: dict[str, str]) -> None:
    assert api.get("/v1/me", headers=world.a.residents[1].headers).status_code == 200  # the genuine one works
    for name, token in attacks.items():
        for method, path in (("GET", "/v1/me"), ("GET", f"/v1/posts/{world.ids['post_id']}"), ("POST", "/v1/regions")):
            reply = api.request(method, path, json={}, headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 401, f"{name} {method} {path}: {reply.status_code} {reply.text}"
            assert reply.headers["content-type"].startswith("application/problem+json")
            expected = "token_expired" if name == "expired" else "token_invalid"
            assert reply.json()["code"] == expected, (name, reply.text)


def grpc_calls(system: Stack, world: World) -> dict[str, Callable[[tuple[tuple[str, str], ...]], Any]]:
    identity = identity_pb2_grpc.IdentityServiceStub(grpc.insecure_channel(system.addr("identity")))
    boards = boards_pb2_grpc.BoardsServiceStub(grpc.insecure_channel(system.addr("boards")))
    return {
        "identity.GetMe": lambda md: identity.GetMe(identity_pb2.GetMeRequest(), metadata=md, timeout=5),
        "boards.GetPost": lambda md: boards.GetPost(
            boards_pb2.GetPostRequest(post_id=world.ids["post_id"]), metadata=md, timeout=5
        ),
    }


def test_forged_tokens_are_refused_by_every_service_over_grpc(
    system: Stack, world: World, attacks: dict[str, str]
) -> None:
    calls = grpc_calls(system, world)
    genuine = (("authorization", f"Bearer {world.a.residents[1].access_token}"),)
    for name, call in calls.items():
        call(genuine)  # the genuine token works directly too
        with pytest.raises(grpc.RpcError) as anonymous:
            call(())
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        for attack, token in attacks.items():
            with pytest.raises(grpc.RpcError) as refused:
                call((("authorization", f"Bearer {token}"),))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, attack, refused.value.details())


def test_a_replayed_refresh_token_ends_the_whole_session(api: httpx.Client, world: World) -> None:
    person = world.a.party_member
    first = login(api, person.phone, PASSWORD)
    second = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    replay = api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401, replay.text
    assert replay.json()["code"] == "refresh_token_reused"
    # the thief's replay ended the family: the legitimate newer token is dead as well
    after = api.post("/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401, after.text
    assert after.headers["content-type"].startswith("application/problem+json")


def test_a_logged_out_session_cannot_be_refreshed(api: httpx.Client, world: World) -> None:
    person = world.a.party_member
    tokens = login(api, person.phone, PASSWORD)
    out = api.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204, out.text
    again = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401, again.text
    assert again.headers["content-type"].startswith("application/problem+json") and again.json()["code"]


def test_an_access_token_used_after_logout_is_refused_by_every_service(
    api: httpx.Client, system: Stack, world: World
) -> None:
    """Logout ends the session: its still-unexpired access token is refused by the gateway and by each
    service directly over gRPC (each follows identity.session.revoked itself), with `session_revoked`."""
    person = world.a.residents[0]
    n = world.a.neighbourhood_id
    tokens = login(api, person.phone, PASSWORD)
    stubs = {
        name: grpc.insecure_channel(system.addr(name))
        for name in ("identity", "boards", "issues", "volunteers", "insights", "grid-gateway")
    }
    calls: dict[str, Callable[[tuple[tuple[str, str], ...]], Any]] = {
        "identity": lambda md: identity_pb2_grpc.IdentityServiceStub(stubs["identity"]).GetMe(
            identity_pb2.GetMeRequest(), metadata=md, timeout=5
        ),
        "boards": lambda md: boards_pb2_grpc.BoardsServiceStub(stubs["boards"]).GetPost(
            boards_pb2.GetPostRequest(post_id=world.ids["post_id"]), metadata=md, timeout=5
        ),
        "issues": lambda md: issues_pb2_grpc.IssuesServiceStub(stubs["issues"]).ListIssueCategories(
            issues_pb2.ListIssueCategoriesRequest(neighbourhood_id=n), metadata=md, timeout=5
        ),
        "volunteers": lambda md: volunteers_pb2_grpc.VolunteersServiceStub(stubs["volunteers"]).ListTeams(
            volunteers_pb2.ListTeamsRequest(neighbourhood_id=n), metadata=md, timeout=5
        ),
        "insights": lambda md: insights_pb2_grpc.InsightsServiceStub(stubs["insights"]).GetPortrait(
            insights_pb2.GetPortraitRequest(neighbourhood_id=n), metadata=md, timeout=5
        ),
        "grid-gateway": lambda md: gridgateway_pb2_grpc.GridGatewayServiceStub(stubs["grid-gateway"]).GetCircuits(
            gridgateway_pb2.GetCircuitsRequest(), metadata=md, timeout=5
        ),
    }
    md = (("authorization", f"Bearer {tokens['access_token']}"),)

    def answer(name: str) -> str:
        """ "ok", or the stable code of the refusal."""
        try:
            calls[name](md)
            return "ok"
        except grpc.RpcError as exc:
            code, _ = error_info(exc)  # type: ignore[arg-type]
            return f"{exc.code().name}:{code}"

    try:
        before = {name: answer(name) for name in calls}
        # the live session is let in (what each one then allows the resident is its own business)
        assert not any(a.startswith("UNAUTHENTICATED") for a in before.values()), before
        assert api.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
        assert api.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204

        def refused_everywhere() -> dict[str, str] | None:
            after = {name: answer(name) for name in calls}
            return after if all(a == "UNAUTHENTICATED:session_revoked" for a in after.values()) else None

        eventually(refused_everywhere, timeout=30, interval=0.5, what="every service refusing the ended session")
        reply = api.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert (reply.status_code, reply.json()["code"]) == (401, "session_revoked")
        # the person's other sessions go on
        assert api.get("/v1/me", headers=person.headers).status_code == 200
    finally:
        for channel in stubs.values():
            channel.close()
