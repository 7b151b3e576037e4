"""Names of the per-neighbourhood, per-day counters, and what each event adds to them.

Counters are sums of events (each event is applied exactly once, through the inbox), so they do not
depend on the order in which events arrive: a replay in any order gives the same totals.
"""

from __future__ import annotations

RESIDENTS_JOINED = "residents_joined"
RESIDENTS_VERIFIED = "residents_verified"
RESIDENTS_LEFT = "residents_left"
POSTS = "posts"
COMMENTS = "comments"
VOTES = "votes"
TOPICS_PROPOSED = "topics_proposed"
TOPIC_STAGE_CHANGES = "topic_stage_changes"
CONVENTIONS_ADOPTED = "conventions_adopted"
CONVENTIONS_AMENDED = "conventions_amended"
ISSUES_REPORTED = "issues_reported"
ISSUES_ACKNOWLEDGED = "issues_acknowledged"
ISSUES_RESOLVED = "issues_resolved"
ISSUES_ESCALATED = "issues_escalated"
ISSUES_DISPATCHED = "issues_dispatched"
ISSUES_REOPENED = "issues_reopened"
ISSUES_CLOSED = "issues_closed"
SLA_BREACHES = "sla_breaches"
SLA_BREACHES_RESPONSE = "sla_breaches_response"
SLA_BREACHES_RESOLUTION = "sla_breaches_resolution"
RATINGS = "ratings"
RATING_SUM = "rating_sum"
RATINGS_SATISFIED = "ratings_satisfied"
RATINGS_FIXED = "ratings_fixed"
VOLUNTEERS_APPROVED = "volunteers_approved"
VOLUNTEER_MINUTES = "volunteer_minutes"
ATTENDANCES = "attendances"
BOOKINGS = "bookings"
BOOKINGS_FULFILLED = "bookings_fulfilled"
BOOKING_RATINGS = "booking_ratings"
BOOKING_RATING_SUM = "booking_rating_sum"

# Column order of the daily CSV export.
DAILY_COLUMNS: tuple[str, ...] = (
    RESIDENTS_JOINED,
    RESIDENTS_VERIFIED,
    RESIDENTS_LEFT,
    POSTS,
    COMMENTS,
    VOTES,
    TOPICS_PROPOSED,
    TOPIC_STAGE_CHANGES,
    CONVENTIONS_ADOPTED,
    CONVENTIONS_AMENDED,
    ISSUES_REPORTED,
    ISSUES_ACKNOWLEDGED,
    ISSUES_RESOLVED,
    ISSUES_ESCALATED,
    ISSUES_DISPATCHED,
    ISSUES_REOPENED,
    ISSUES_CLOSED,
    SLA_BREACHES,
    SLA_BREACHES_RESPONSE,
    SLA_BREACHES_RESOLUTION,
    RATINGS,
    RATING_SUM,
    RATINGS_SATISFIED,
    RATINGS_FIXED,
    VOLUNTEERS_APPROVED,
    VOLUNTEER_MINUTES,
    ATTENDANCES,
    BOOKINGS,
    BOOKINGS_FULFILLED,
    BOOKING_RATINGS,
    BOOKING_RATING_SUM,
)

# Issue transitions (the last token of `issues.issue.<transition>`) and the counter each one adds to.
TRANSITION_COUNTERS: dict[str, str] = {
    "acknowledged": ISSUES_ACKNOWLEDGED,
    "resolved": ISSUES_RESOLVED,
    "escalated": ISSUES_ESCALATED,
    "dispatched": ISSUES_DISPATCHED,
    "reopened": ISSUES_REOPENED,
    "closed": ISSUES_CLOSED,
}

SATISFIED_RATING = 4  # ratings are 1..5; 4 and 5 count as satisfied
