from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class InsightsSettings(ServiceSettings):
    service_name: str = Field(default="insights", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50056
    # Local days (for daily figures and periods) begin at midnight at this offset from UTC.
    # 480 = China Standard Time (UTC+8, no daylight saving time).
    insights_day_utc_offset_minutes: int = Field(default=480, ge=-720, le=840)
    # Pain-point detection runs this often (seconds); 0 turns the schedule off (on demand only).
    insights_detection_interval_seconds: float = Field(default=3600.0, ge=0)
    # How often a running rebuild's progress is checked and an interrupted reset resumed (seconds).
    insights_rebuild_check_seconds: float = Field(default=5.0, gt=0)
