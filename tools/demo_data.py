"""Demo data for `make run`: the reference district (宝山区), its sub-districts and the
neighbourhoods the reference article names, loaded through the public API (so every rule applies).
Safe to run again: what exists is found, not duplicated."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
from shequtong_stack import OPERATOR_CLIENT, Stack

CSV = Path(__file__).parent / "demo" / "baoshan-subdistricts.csv"
VILLAGES = {"罗泾镇": ["塘湾村", "海星村"], "罗店镇": ["天平村"]}


def _rows() -> list[dict[str, str]]:
    lines = [line for line in CSV.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, fieldnames=["level", "name", "kind", "parent", "note"]))


class Loader:
    def __init__(self, api: httpx.Client, headers: dict[str, str]) -> None:
        self.api = api
        self.headers = headers
        self.by_code: dict[str, str] = {}

    def region(self, level: str, code: str, name: str, parent: str | None, kind: str | None = None) -> str:
        body = {"level": level, "code": code, "name": name, "parent_id": parent, "kind": kind}
        reply = self.api.post("/v1/regions", json=body, headers={**self.headers, "Idempotency-Key": f"demo-{code}"})
        if reply.status_code == 201:
            return str(reply.json()["id"])
        if reply.status_code == 409:
            return self.find(code, parent)
        raise RuntimeError(f"creating {name}: {reply.status_code} {reply.text}")

    def find(self, code: str, parent: str | None) -> str:
        cursor = None
        while True:
            params = {
                "parent_id": parent or "",
                "level": "district" if not parent else None,
                "page_size": 100,
                "cursor": cursor,
            }
            reply = self.api.get("/v1/regions", params={k: v for k, v in params.items() if v}, headers=self.headers)
            reply.raise_for_status()
            page = reply.json()
            for item in page["items"]:
                if item["code"] == code:
                    return str(item["id"])
            cursor = page["next_cursor"]
            if not cursor:
                raise RuntimeError(f"region {code} exists but was not found")


def load_demo_data(stack: Stack) -> list[str]:
    with httpx.Client(base_url=stack.gateway_url, timeout=20) as api:
        token = api.post(
            "/v1/auth/service-token",
            json={
                "client_id": OPERATOR_CLIENT,
                "client_secret": stack.secrets.service_secrets[OPERATOR_CLIENT],
            },
        ).json()["access_token"]
        loader = Loader(api, {"Authorization": f"Bearer {token}"})
        rows = _rows()
        district = loader.region("district", "310113", "宝山区", None)
        subdistricts: dict[str, str] = {}
        for index, row in enumerate(r for r in rows if r["level"] == "subdistrict"):
            subdistricts[row["name"]] = loader.region("subdistrict", f"310113{index + 1:03d}", row["name"], district)
        neighbourhoods: dict[str, str] = {}
        counter = 0
        for row in rows:
            if row["level"] != "neighbourhood":
                continue
            counter += 1
            neighbourhoods[row["name"]] = loader.region(
                "neighbourhood", f"310113N{counter:03d}", row["name"], subdistricts[row["parent"]], "residential"
            )
        for town, villages in VILLAGES.items():
            for village in villages:
                counter += 1
                neighbourhoods[village] = loader.region(
                    "neighbourhood", f"310113N{counter:03d}", village, subdistricts[town], "village"
                )
    return [
        f"District 宝山区 with {len(subdistricts)} sub-districts and {len(neighbourhoods)} neighbourhoods loaded.",
        f"Operator client: {OPERATOR_CLIENT} / {stack.secrets.service_secrets[OPERATOR_CLIENT]} "
        "(POST /v1/auth/service-token) — secrets in var/secrets.json",
    ]
