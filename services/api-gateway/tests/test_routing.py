"""The flat route table (`routing.py`) must route exactly as FastAPI's included routers did: the shape test
only turns away paths a route's regular expression would refuse, and nothing else about the API moves."""

from __future__ import annotations

import itertools
import re

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from shequtong_api_gateway.app import create_app
from shequtong_api_gateway.routing import ShapedRoute, add_routes, gateway_router
from shequtong_api_gateway.settings import GatewaySettings
from starlette.routing import Match, Route
from starlette.testclient import TestClient

ADDRESSES = ("identity", "boards", "issues", "grid_gateway", "volunteers", "insights")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(GatewaySettings(**{f"{name}_addr": "127.0.0.1:1" for name in ADDRESSES}))


def _request_paths(route_path: str) -> list[str]:
    """Paths near `route_path`: filled in, one segment more or less, a literal changed, a trailing slash."""
    filled = re.sub(r"\{[^}]+\}", "x1", route_path)
    segments = filled.split("/")
    near = [filled, filled + "/", filled + "/extra", "/".join(segments[:-1]) or "/"]
    near += ["/".join([*segments[:i], "other", *segments[i + 1 :]]) for i in range(1, len(segments))]
    return near


def _scope(path: str, method: str) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def test_every_route_is_shaped_and_answers_as_its_regular_expression(app: FastAPI) -> None:
    routes = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert len(routes) > 150
    assert all(isinstance(route, ShapedRoute) for route in routes)
    paths = sorted({p for route in routes for p in _request_paths(route.path)})
    compared = 0
    for route, path, method in itertools.product(routes, paths, ("GET", "POST")):
        shaped, _ = route.matches(_scope(path, method))
        plain, _ = Route.matches(route, _scope(path, method))
        assert shaped == plain, (route.path, path, method)
        compared += shaped != Match.NONE
    assert compared > len(routes)  # the comparison saw matches, not only refusals


def test_a_path_parameter_route_is_matched_by_its_expression_alone() -> None:
    router = gateway_router(prefix="/v1/files")

    @router.get("/{rest:path}", response_class=JSONResponse)
    async def file(rest: str) -> dict[str, str]:
        return {"rest": rest}

    @router.get("/{name}/meta", response_class=JSONResponse)
    async def meta(name: str) -> dict[str, str]:
        return {"name": name}

    app = FastAPI()
    add_routes(app, router)
    with TestClient(app) as client:
        assert client.get("/v1/files/a/b/c").json() == {"rest": "a/b/c"}
        assert client.get("/v1/files/a/meta").json() == {"rest": "a/meta"}  # first declared wins, as before


def test_the_table_routes_methods_redirects_and_unknown_paths_as_before() -> None:
    router = gateway_router(prefix="/v1/things", tags=["things"])

    @router.get("/{thing_id}", response_class=JSONResponse)
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/{thing_id}/likes", status_code=201, response_class=JSONResponse)
    async def like(thing_id: str) -> dict[str, str]:
        return {"liked": thing_id}

    app = FastAPI()
    add_routes(app, router)
    with TestClient(app) as client:
        assert client.get("/v1/things/t1").json() == {"id": "t1"}
        assert client.post("/v1/things/t1/likes").status_code == 201
        assert client.get("/v1/things/t1/likes").status_code == 405
        redirected = client.get("/v1/things/t1/", follow_redirects=False)
        assert redirected.status_code == 307 and redirected.headers["location"].endswith("/v1/things/t1")
        assert client.get("/v1/nothing/t1").status_code == 404
    assert app.openapi()["paths"]["/v1/things/{thing_id}"]["get"]["tags"] == ["things"]


def test_only_routes_of_a_gateway_router_are_added() -> None:
    from fastapi import APIRouter

    plain = APIRouter()

    @plain.get("/v1/plain")
    async def plain_route() -> None: ...

    with pytest.raises(TypeError, match="gateway_router"):
        add_routes(FastAPI(), plain)
