"""The fault table: one row per fault survived (or not)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from shequtong_stack import Stack

from shequtong_kit.testing import NatsServer


class Private:
    """A system of one test module's own, with the NATS server it may kill."""

    def __init__(self, stack: Stack, nats: NatsServer, client: httpx.Client, headers: dict[str, str]) -> None:
        self.stack, self.nats, self.api, self.ops_headers = stack, nats, client, headers


@dataclass
class Fault:
    fault: str
    attempted: int
    lost: int
    duplicated: int
    recovered_s: float | None = None


FAULTS: list[Fault] = []


def record(fault: str, attempted: int, lost: int, duplicated: int, recovered_s: float | None = None) -> Fault:
    row = Fault(fault, attempted, lost, duplicated, recovered_s)
    FAULTS.append(row)
    print(f"\nFAULT {row}")
    return row
