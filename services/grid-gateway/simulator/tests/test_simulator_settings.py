"""Configuration from the environment, and a district's own catalogue file."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from shequtong_grid_simulator.catalogue import CatalogueError, load_catalogue
from shequtong_grid_simulator.settings import Settings, SettingsError


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert (s.host, s.http_port, s.api_key) == ("127.0.0.1", 8090, "dev-grid-key")
    assert s.webhook_url == "" and s.auto_advance_seconds == 0 and s.response_mode == "id"
    assert s.utc_offset == timedelta(hours=8)


def test_values_from_environment() -> None:
    s = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "HTTP_PORT": "9001",
            "SIMULATOR_API_KEY": "k",
            "SIMULATOR_WEBHOOK_URL": "http://127.0.0.1:8080/grid/updates",
            "SIMULATOR_WEBHOOK_SECRET": "s",
            "SIMULATOR_WEBHOOK_API_KEY": "wk",
            "SIMULATOR_AUTO_ADVANCE_SECONDS": "2.5",
            "SIMULATOR_RESPONSE_MODE": "token",
            "SIMULATOR_UTC_OFFSET": "Z",
        }
    )
    assert (s.host, s.http_port, s.api_key, s.webhook_secret, s.webhook_api_key) == (
        "0.0.0.0",
        9001,
        "k",
        "s",
        "wk",
    )
    assert s.auto_advance_seconds == 2.5 and s.response_mode == "token" and s.utc_offset == timedelta(0)


@pytest.mark.parametrize(
    "env",
    [
        {"HTTP_PORT": "eighty"},
        {"HTTP_PORT": "70000"},
        {"SIMULATOR_AUTO_ADVANCE_SECONDS": "-1"},
        {"SIMULATOR_RESPONSE_MODE": "xml"},
        {"SIMULATOR_API_KEY": ""},
        {"SIMULATOR_WEBHOOK_URL": "ftp://x"},
        {"SIMULATOR_WEBHOOK_URL": "http://x", "SIMULATOR_WEBHOOK_SECRET": ""},
        {"SIMULATOR_UTC_OFFSET": "CST"},
    ],
)
def test_bad_values_fail_at_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


async def test_catalogue_file_replaces_the_default(start_sim: Any, make_settings: Any, tmp_path: Any) -> None:
    path = tmp_path / "services.json"
    path.write_text(
        json.dumps(
            [
                {
                    "service_code": "SH-0101",
                    "service_name": "乱涂写",
                    "group": "市容环境",
                    "keywords": "乱涂写,graffiti",
                    "time_limit_hours": 8,
                    "departments": ["镇城管中队"],
                    "attributes": [
                        {
                            "code": "surface",
                            "datatype": "singlevaluelist",
                            "required": True,
                            "values": [{"key": "wall", "name": "墙面"}],
                        }
                    ],
                }
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    async with start_sim(make_settings(services_file=str(path))) as sim:
        services = (await sim.client.get("/services.json")).json()
        assert [s["service_code"] for s in services] == ["SH-0101"]
        assert services[0]["keywords"] == "乱涂写,graffiti"
        bad = await sim.client.post(
            "/requests.json",
            data={
                "api_key": "test-grid-key",
                "service_code": "SH-0101",
                "address_id": "A1",
                "attribute[surface]": "sky",
            },
        )
        assert bad.status_code == 400
        rid = await sim.create(service_code="SH-0101", **{"attribute[surface]": "wall"})
        await sim.client.post(f"/_sim/advance/{rid}", params={"to": "dispatched"})
        assert (await sim.one(rid))["agency_responsible"] == "镇城管中队"


def test_bad_catalogue_files(tmp_path: Any) -> None:
    for content in (
        "[]",
        "{}",
        '[{"service_code": "x"}]',
        '[{"service_code":"a","service_name":"A"},{"service_code":"a","service_name":"B"}]',
        "not json",
    ):
        path = tmp_path / "c.json"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(CatalogueError):
            load_catalogue(path)
