"""Spans are recorded only where they are exported; a span that is not recorded still carries ids
(logs and events' traceparent keep them), and a caller's sampled trace is followed either way.
Telemetry is set up once per process, so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json
from opentelemetry import propagate, trace
from shequtong_kit.telemetry import setup_telemetry

setup_telemetry("probe", instrument_grpc=False)
tracer = trace.get_tracer("probe")
with tracer.start_as_current_span("root") as root:
    root_recording = root.is_recording()
    carrier = {}
    propagate.inject(carrier)
sampled_parent = propagate.extract({"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"})
with tracer.start_as_current_span("child", context=sampled_parent) as child:
    child_recording = child.is_recording()
print(json.dumps({
    "root_recording": root_recording,
    "root_valid": root.get_span_context().is_valid,
    "traceparent": carrier.get("traceparent", ""),
    "child_recording": child_recording,
    "child_trace": format(child.get_span_context().trace_id, "032x"),
}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_without_an_exporter_spans_carry_ids_but_are_not_recorded() -> None:
    seen = probe()
    assert (seen["root_recording"], seen["root_valid"]) == (False, True)
    assert int(str(seen["traceparent"]).rsplit("-", 1)[1], 16) & 1 == 0, "propagated, marked not sampled"
    assert seen["child_recording"] is True, "a caller's sampled trace is still followed"
    assert seen["child_trace"] == "ab" * 16


def test_with_an_exporter_every_trace_is_recorded_unless_the_operator_samples() -> None:
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    assert probe(**exporting)["root_recording"] is True
    assert probe(**exporting, OTEL_TRACES_SAMPLER="parentbased_always_off")["root_recording"] is False
