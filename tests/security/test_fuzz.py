"""Property-based fuzzing of every operation of the gateway's OpenAPI document (schemathesis), with a
valid resident token and a valid operator token: no 5xx, and every 4xx is problem+json with a `code`.
Bounded: a few examples per operation and a time budget per token; the number of cases run is printed.
Derandomised: the same cases every run, so a finding is reproducible and CI is not a lottery."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from shequtong_stack import Stack

from security.world import World

EXAMPLES_PER_OPERATION = 4
BUDGET_SECONDS = 45.0


def fuzz(system: Stack, spec: dict[str, Any], headers: dict[str, str]) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_dict(spec)
    cases = 0
    problems: list[str] = []
    stalls: list[str] = []
    started = time.monotonic()
    with httpx.Client(base_url=system.gateway_url, timeout=20) as client:
        for result in schema.get_all_operations():
            if time.monotonic() - started > BUDGET_SECONDS:
                break
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                nonlocal cases
                cases += 1
                kwargs = case.as_transport_kwargs(base_url=system.gateway_url)
                sent = {**(kwargs.get("headers") or {}), **headers}
                try:
                    reply = client.request(
                        kwargs["method"],
                        kwargs["url"],
                        params=kwargs.get("params"),
                        headers=sent,
                        content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
                        json=kwargs.get("json"),
                    )
                except httpx.TimeoutException:
                    stalls.append(f"{case.method} {case.formatted_path} (headers {sorted(sent)})")
                    return
                except httpx.TransportError as exc:
                    problems.append(f"{case.method} {case.formatted_path}: {exc!r} (sent {kwargs!r})")
                    return
                where = f"{case.method} {reply.request.url} → {reply.status_code}: {reply.text[:160]}"
                if reply.status_code >= 500 and reply.status_code not in (503, 504):
                    problems.append(where)
                elif reply.status_code >= 400:
                    body = reply.json() if reply.content else {}
                    if not reply.headers.get("content-type", "").startswith("application/problem+json") or not (
                        isinstance(body, dict) and body.get("code")
                    ):
                        problems.append(f"not problem+json: {where}")

            run()
    problems += [f"no answer within 20 s: {stall}" for stall in stalls]
    return cases, problems


@pytest.mark.parametrize("who", ["resident", "operator"])
def test_fuzzing_every_operation_finds_no_5xx_and_only_problem_json(
    api: httpx.Client, system: Stack, world: World, ops_headers: dict[str, str], who: str
) -> None:
    spec = api.get("/openapi.json").json()
    headers = world.a.residents[1].headers if who == "resident" else ops_headers
    cases, problems = fuzz(system, spec, headers)
    print(f"\nfuzz ({who} token): {cases} cases over {len(spec['paths'])} paths, {len(problems)} problems")
    assert cases >= len(spec["paths"]), "the budget ran out before every operation was tried"
    assert not problems, "\n".join(sorted(set(problems))[:30] + unhandled_errors(system))


def unhandled_errors(system: Stack) -> list[str]:
    """The tail of each unhandled-error traceback the services logged: what a failure report needs."""
    found = []
    for name, text in system.logs().items():
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("exception") and entry.get("logger") != "uvicorn.error":
                    found.append(f"{name}: {entry.get('message')}: {entry['exception'][-400:]}")
    return found[:10]
