"""Wiring only: `python -m shequtong_issues [serve|migrate]`."""

from __future__ import annotations

from shequtong.issues.v1 import issues_pb2, issues_pb2_grpc
from shequtong_issues.consumers import consumer_specs
from shequtong_issues.onduty import IdentityOnDuty
from shequtong_issues.scheduler import Scheduler
from shequtong_issues.service import IssuesService
from shequtong_issues.servicer import IssuesServicer
from shequtong_issues.settings import IssuesSettings
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(IssuesSettings)
    app = ServiceApp("issues", settings, produces=["ISSUES"])
    onduty = IdentityOnDuty(settings.identity_addr, app.service_tokens, settings.issues_onduty_deadline_seconds)
    service = IssuesService(settings, app.sessions, app.outbox, app.clock, onduty)
    app.add_servicer(
        issues_pb2_grpc.add_IssuesServiceServicer_to_server,
        IssuesServicer(service),
        issues_pb2.DESCRIPTOR.services_by_name["IssuesService"].full_name,
    )
    for spec in consumer_specs(service):
        app.add_consumer(spec)
    scheduler = Scheduler(service, settings.issues_scheduler_interval_seconds, settings.issues_assignment_retry_seconds)
    app.on_start(service.metrics.start)
    app.on_start(scheduler.start)
    app.add_task(scheduler.sla_loop)
    app.add_task(scheduler.assignment_loop)
    return app


def main() -> None:
    run_main("shequtong_issues", build)


if __name__ == "__main__":
    main()
