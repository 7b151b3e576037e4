from __future__ import annotations

from pydantic import Field

from shequtong_issues.domain.sla import EscalationPolicy
from shequtong_kit.settings import ServiceSettings


class IssuesSettings(ServiceSettings):
    service_name: str = Field(default="issues", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50053
    # How often the SLA scheduler looks for breached clocks and expired feedback windows (every replica
    # runs it; claims keep the work single).
    issues_scheduler_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    # How often issues whose on-duty lookup failed are assigned again.
    issues_assignment_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Deadline of the GetOnDuty call to identity.
    issues_onduty_deadline_seconds: float = Field(default=2.0, gt=0, le=30)
    # Which breaches escalate an issue one level by themselves: off, response, response_and_resolution.
    issues_auto_escalate: EscalationPolicy = EscalationPolicy.RESPONSE
    # How long the reporter may rate a resolved issue; unanswered, it closes after this.
    issues_feedback_window_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    # Where uploaded media references (e.g. "uploads/2026/x.jpg") are served, to send the grid full links.
    issues_media_base_url: str = ""
