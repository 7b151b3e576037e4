"""Resident and cadre journeys through the API gateway with real tokens (written against /openapi.json).

Each journey is a workload for the load driver (bench.loadgen), built inside the driver processes from
the fixtures the generator left (neighbourhood ids, board ids, post and issue ids, access tokens). A
journey names the routes it needs; when one is not in the gateway's OpenAPI yet, the run reports the
journey as unavailable instead of measuring something else.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from typing import Any

from bench.http import Http
from bench.loadgen import Op

FEED_PAGE = 20

# Journey → the routes it needs, what it does, and the raw limit it is compared with.
JOURNEYS: dict[str, dict[str, Any]] = {
    "my_profile": {
        "what": "resident opens their profile (person, memberships, roles)",
        "routes": ["GET /v1/me"],
        "baseline": "http_grpc_hop",
    },
    "board_list": {
        "what": "resident opens the neighbourhood's list of boards",
        "routes": ["GET /v1/neighbourhoods/{neighbourhood_id}/boards"],
        "baseline": "http_grpc_hop",
    },
    "home_feed": {
        "what": "resident opens the neighbourhood's home feed (first page)",
        "routes": ["GET /v1/neighbourhoods/{neighbourhood_id}/feed"],
        "baseline": "http_db_2w",
    },
    "board_first_page": {
        "what": "resident opens a board (first page of 议事厅)",
        "routes": ["GET /v1/boards/{board_id}/posts"],
        "baseline": "http_db_2w",
    },
    "board_deep_page": {
        "what": "resident opens a board page deep in the feed (keyset cursor)",
        "routes": ["GET /v1/boards/{board_id}/posts"],
        "baseline": "http_db_2w",
    },
    "post_with_comments": {
        "what": "resident opens a post and its first page of comments (2 requests)",
        "routes": ["GET /v1/posts/{post_id}", "GET /v1/posts/{post_id}/comments"],
        "baseline": "http_db_2w",
    },
    "comment_or_like": {
        "what": "resident comments on a post or likes it (half each)",
        "routes": ["POST /v1/posts/{post_id}/comments", "PUT /v1/posts/{post_id}/like"],
        "baseline": "http_db_2w",
    },
    "report_problem": {
        "what": "resident reports a problem",
        "routes": ["POST /v1/issues"],
        "baseline": "http_db_2w",
    },
    "cadre_queue": {
        "what": "cadre opens the neighbourhood's queue and the first issue in it (2 requests)",
        "routes": ["GET /v1/neighbourhoods/{neighbourhood_id}/issues", "GET /v1/issues/{issue_id}"],
        "baseline": "http_db_2w",
    },
    "volunteer_signup": {
        "what": "resident signs up for a volunteer activity",
        "routes": ["POST /v1/activities/{activity_id}/signups"],
        "baseline": "http_db_2w",
    },
    "mixed_resident": {
        "what": "80% reads (feed, board, post+comments), 15% comments/likes, 5% reports",
        "routes": [
            "GET /v1/neighbourhoods/{neighbourhood_id}/feed",
            "GET /v1/boards/{board_id}/posts",
            "GET /v1/posts/{post_id}",
            "GET /v1/posts/{post_id}/comments",
            "POST /v1/posts/{post_id}/comments",
            "PUT /v1/posts/{post_id}/like",
            "POST /v1/issues",
        ],
        "baseline": "http_db_2w",
    },
    "report_dispatch": {
        "what": "resident reports, the cadre dispatches to the grid in one click (end to end: ticket sent)",
        "routes": ["POST /v1/issues", "POST /v1/issues/{issue_id}/dispatch", "GET /v1/grid/tickets"],
        "baseline": "http_db_2w",
    },
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Journey:
    """Common state: the gateway client and the fixtures, indexed for quick random picks."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.http = Http(params["base_url"], pool=int(params.get("pool", 64)))
        self.params = params
        fixtures = params["fixtures"]
        self.hoods = [n for n in fixtures["neighbourhoods"] if n["resident_tokens"]]
        self.posts = [(n, p) for n in self.hoods for p in n["posts"]]
        self.deep = params.get("deep_cursors", {})
        self.run = uuid.uuid4().hex[:8]
        self.counter = itertools.count()

    async def setup(self) -> None:
        await self.http.setup()

    async def close(self) -> None:
        await self.http.close()

    def resident(self, rng: random.Random) -> tuple[dict[str, Any], dict[str, str]]:
        n = self.hoods[rng.randrange(len(self.hoods))]
        return n, _bearer(n["resident_tokens"][rng.randrange(len(n["resident_tokens"]))])

    def key(self) -> str:
        return f"bench-{self.run}-{next(self.counter)}"

    # the operations --------------------------------------------------------------------------------
    def home_feed(self, rng: random.Random) -> Op:
        n, headers = self.resident(rng)
        return lambda: self.http.get(
            f"/v1/neighbourhoods/{n['id']}/feed", params={"page_size": str(FEED_PAGE)}, headers=headers
        )

    def board_page(self, rng: random.Random, deep: bool) -> Op:
        n, headers = self.resident(rng)
        board = n["boards"].get("deliberation_hall") or next(iter(n["boards"].values()))
        params = {"page_size": str(FEED_PAGE)}
        if deep and self.deep.get(board):
            params["cursor"] = self.deep[board]
        return lambda: self.http.get(f"/v1/boards/{board}/posts", params=params, headers=headers)

    def post_with_comments(self, rng: random.Random) -> Op:
        n, post = self.posts[rng.randrange(len(self.posts))]
        headers = _bearer(n["resident_tokens"][rng.randrange(len(n["resident_tokens"]))])

        async def op() -> None:
            await self.http.get(f"/v1/posts/{post}", headers=headers)
            await self.http.get(f"/v1/posts/{post}/comments", params={"page_size": str(FEED_PAGE)}, headers=headers)

        return op

    def comment_or_like(self, rng: random.Random) -> tuple[str, Op]:
        n, post = self.posts[rng.randrange(len(self.posts))]
        headers = _bearer(n["resident_tokens"][rng.randrange(len(n["resident_tokens"]))])
        if rng.random() < 0.5:
            key = self.key()
            return "comment", lambda: self.http.post(
                f"/v1/posts/{post}/comments",
                json={"body": "同意，支持！"},
                headers={**headers, "Idempotency-Key": key},
            )
        return "like", lambda: self.http.request("PUT", f"/v1/posts/{post}/like", headers=headers)

    def report(self, rng: random.Random) -> Op:
        n, headers = self.resident(rng)
        key = self.key()
        body = {
            "neighbourhood_id": n["id"],
            "title": "楼道灯不亮",
            "description": "3号楼2单元楼道灯坏了好几天",
            "location": {"building": f"{rng.randint(1, 40)}号楼"},
        }
        return lambda: self.http.post("/v1/issues", json=body, headers={**headers, "Idempotency-Key": key})


class MyProfile(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        _n, headers = self.resident(rng)
        return "my_profile", lambda: self.http.get("/v1/me", headers=headers)


class BoardList(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        n, headers = self.resident(rng)
        return "board_list", lambda: self.http.get(f"/v1/neighbourhoods/{n['id']}/boards", headers=headers)


class HomeFeed(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return "home_feed", self.home_feed(rng)


class BoardFirstPage(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return "board_first_page", self.board_page(rng, deep=False)


class BoardDeepPage(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return "board_deep_page", self.board_page(rng, deep=True)


class PostWithComments(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return "post_with_comments", self.post_with_comments(rng)


class CommentOrLike(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return self.comment_or_like(rng)


class ReportProblem(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        return "report", self.report(rng)


class CadreQueue(Journey):
    def pick(self, rng: random.Random) -> tuple[str, Op]:
        cadres = [n for n in self.hoods if n["cadre_token"]]
        n = cadres[rng.randrange(len(cadres))]
        headers = _bearer(n["cadre_token"])

        async def op() -> None:
            page = await self.http.get(
                f"/v1/neighbourhoods/{n['id']}/issues", params={"page_size": str(FEED_PAGE)}, headers=headers
            )
            items = page.get("items", []) if isinstance(page, dict) else []
            if items:
                await self.http.get(f"/v1/issues/{items[0]['id']}", headers=headers)

        return "cadre_queue", op


PHASES = 3  # capacity, open loop at the target rate, open loop at a carried rate


class VolunteerSignup(Journey):
    """Each (resident, activity) pair signs up once: the pairs are dealt out to the phases of a run
    (`phase` 0 capacity, 1 latency at the target rate, 2 at a carried rate) and to the driver processes
    of each phase, so none repeats."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        pairs = [(a, t) for n in self.hoods for a in n.get("activities", []) for t in n["resident_tokens"]]
        random.Random(7).shuffle(pairs)
        count = int(params.get("driver_count", 1))
        share = int(params.get("phase", 0)) * count + int(params.get("driver_index", 0))
        self.pairs = iter(pairs[share :: PHASES * count])

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        pair = next(self.pairs, None)
        if pair is None:

            async def exhausted() -> None:
                raise RuntimeError("no (resident, activity) pair left: raise the activity count")

            return "signup", exhausted
        activity, token = pair
        key = self.key()
        return "signup", lambda: self.http.post(
            f"/v1/activities/{activity}/signups", json={}, headers={**_bearer(token), "Idempotency-Key": key}
        )


class MixedResident(Journey):
    """80% reads, 15% comments and likes, 5% reports (the issue's mixed resident journey)."""

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        roll = rng.random()
        if roll < 0.40:
            return "home_feed", self.home_feed(rng)
        if roll < 0.60:
            return "board_page", self.board_page(rng, deep=rng.random() < 0.3)
        if roll < 0.80:
            return "post_with_comments", self.post_with_comments(rng)
        if roll < 0.95:
            return self.comment_or_like(rng)
        return "report", self.report(rng)


class ReportDispatch(Journey):
    """Report (resident) then one-click dispatch (cadre); remembers when each was *scheduled*, so the
    run can measure report → ticket sent to the grid from the grid gateway's own record afterwards."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.dispatched: list[tuple[str, str, float]] = []  # (issue id, dispatch id, wall time at start)

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        n, headers = self.resident(rng)
        cadre = _bearer(n["cadre_token"])
        key = self.key()
        body = {
            "neighbourhood_id": n["id"],
            "title": "暴露垃圾",
            "description": "小区门口垃圾堆放，需要清运",
            "category_code": self.params.get("category_code") or None,
            "location": {"building": f"{rng.randint(1, 40)}号楼", "address": "淞南十村东门"},
        }
        if not body["category_code"]:
            body.pop("category_code")

        async def op() -> None:
            started = time.time()
            issue = await self.http.post("/v1/issues", json=body, headers={**headers, "Idempotency-Key": key})
            reply = await self.http.post(
                f"/v1/issues/{issue['id']}/dispatch", json={}, headers={**cadre, "Idempotency-Key": key + "-d"}
            )
            self.dispatched.append((issue["id"], reply.get("dispatch_id", ""), started))

        return "report_dispatch", op

    def extra(self) -> list[tuple[str, str, float]]:
        return self.dispatched


FACTORIES = {
    "my_profile": "bench.journeys:MyProfile",
    "board_list": "bench.journeys:BoardList",
    "home_feed": "bench.journeys:HomeFeed",
    "board_first_page": "bench.journeys:BoardFirstPage",
    "board_deep_page": "bench.journeys:BoardDeepPage",
    "post_with_comments": "bench.journeys:PostWithComments",
    "comment_or_like": "bench.journeys:CommentOrLike",
    "report_problem": "bench.journeys:ReportProblem",
    "cadre_queue": "bench.journeys:CadreQueue",
    "volunteer_signup": "bench.journeys:VolunteerSignup",
    "mixed_resident": "bench.journeys:MixedResident",
    "report_dispatch": "bench.journeys:ReportDispatch",
}
