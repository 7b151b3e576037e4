"""JetStream handlers of volunteers: every event it reacts to, idempotent through the kit's inbox."""

from __future__ import annotations

from shequtong_kit import regions
from shequtong_kit.consumer import ConsumerSpec, route


def consumer_specs() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="volunteers-regions",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route(dict(regions.ROUTES)),
        )
    ]
