"""Small parts of the kit: ids, clocks, log scrubbing, cursors, settings, error details."""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from shequtong_kit.clock import ManualClock, OffsetFileClock
from shequtong_kit.errors import InvalidArgument, NotFound
from shequtong_kit.ids import new_id
from shequtong_kit.logging import JsonFormatter, scrub
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size
from shequtong_kit.settings import ConfigurationError, ServiceSettings, load_settings


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" for i in ids)  # UUID version 7
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i and u.version == 7 and u.variant == uuid.RFC_4122 for u, i in zip(parsed, ids, strict=True))
    assert len({i[-12:] for i in ids}) == len(ids)  # the random part differs every time, not only the clock


def test_a_forked_child_does_not_repeat_its_parents_random_bits() -> None:
    new_id()  # the parent holds random bytes it has not used yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1 << 16).decode().split()
    os.close(read)
    parent = [new_id() for _ in range(50)]
    assert len(child) == 50
    assert not {i[-12:] for i in child} & {i[-12:] for i in parent}


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == clock.now()
    clock.advance(hours=15)
    assert clock.now() == datetime(2026, 1, 1, 15, tzinfo=UTC)


def test_offset_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path)
    base = clock.now()
    path.write_text(str(15 * 3600))
    moved = clock.now()
    assert moved - base >= timedelta(hours=15)
    assert moved.tzinfo is not None


def test_scrub_removes_id_and_phone_numbers() -> None:
    text = scrub("user 310113199001011234 phone 13812345678 ok 2026")
    assert "310113199001011234" not in text and "13812345678" not in text
    assert "[id-number]" in text and "[phone]" in text and "2026" in text


def test_json_log_line_is_scrubbed_and_structured() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call 13912345678", (), None)
    record.neighbourhood = "N1"
    line = json.loads(JsonFormatter("svc").format(record))
    assert line["service"] == "svc" and line["level"] == "info" and line["neighbourhood"] == "N1"
    assert "13912345678" not in line["message"]


def test_cursor_round_trip_and_garbage() -> None:
    cursor = encode_cursor(True, "2026-01-01T00:00:00+00:00", "abc")
    assert decode_cursor(cursor) == [True, "2026-01-01T00:00:00+00:00", "abc"]
    assert decode_cursor("") is None
    with pytest.raises(InvalidArgument):
        decode_cursor("!!!not-base64")
    assert page_size(0) == 20 and page_size(500) == 100
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_settings_fail_fast_naming_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NATS_URL", "nats://x")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(ServiceSettings)
    assert "DATABASE_URL" in str(caught.value)


def test_domain_error_carries_a_stable_code() -> None:
    err = NotFound("no such issue", code="issue_not_found", issue="I1")
    status = err.to_status()
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "issue_not_found" and info.metadata["issue"] == "I1"
    assert status_pb2.Status.FromString(status.SerializeToString()) == status


def test_timestamps_convert_as_protobuf_itself_does() -> None:
    from datetime import timezone

    from google.protobuf.timestamp_pb2 import Timestamp

    from shequtong_kit.proto import from_ts, ts

    shanghai = timezone(timedelta(hours=8))
    moments = [
        datetime(2026, 11, 27, 18, 42, 53, 123456, tzinfo=UTC),
        datetime(2026, 11, 28, 2, 42, 53, 999999, tzinfo=shanghai),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(1949, 10, 1, 15, 0, tzinfo=shanghai),
        datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
    ]
    for moment in moments:
        theirs = Timestamp()
        theirs.FromDatetime(moment)
        assert ts(moment) == theirs, moment
        assert from_ts(theirs) == theirs.ToDatetime(tzinfo=UTC) == moment
    assert ts(None) is None and from_ts(None) is None and from_ts(Timestamp()) is None
