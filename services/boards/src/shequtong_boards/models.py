"""Boards' own tables (migrations in migrations/versions are hand-written to match)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


VISIBLE_ONLY = text("status = 'visible'")


class Board(Base):
    __tablename__ = "boards"
    __table_args__ = (
        UniqueConstraint("neighbourhood_id", "kind", name="uq_boards_neighbourhood_kind"),
        Index(
            "uq_boards_district_kind",
            "district_id",
            "kind",
            unique=True,
            postgresql_where=text("scope = 'district'"),
            sqlite_where=text("scope = 'district'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NULL for district-scope boards.
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    district_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    scope: Mapped[str] = mapped_column(String(16), default="neighbourhood", server_default="neighbourhood")
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CatalogueVersion(Base):
    """Moves with every change to a district's boards or catalogue (see `cache.CatalogueCache`)."""

    __tablename__ = "catalogue_versions"

    district_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class FeedVersion(Base):
    """Moves with every change to what a first feed page of a place shows, except its counters (see
    `cache.FeedPageCache`). A place is `n:<neighbourhood>` or `d:<district>` (a district's own boards),
    as role scopes are written; `people` moves when a name shown on any page changes."""

    __tablename__ = "feed_versions"

    place: Mapped[str] = mapped_column(String(48), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class CatalogueOverride(Base):
    """A district's change to the catalogue (a default kind's name/policy, or a kind of its own)."""

    __tablename__ = "catalogue_overrides"

    district_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        # Keyset feeds: WHERE <scope> = ? AND status = 'visible' ORDER BY pinned, created_at, id DESC.
        Index(
            "ix_posts_board_feed",
            "board_id",
            "pinned",
            "created_at",
            "id",
            postgresql_where=VISIBLE_ONLY,
            sqlite_where=VISIBLE_ONLY,
        ),
        Index(
            "ix_posts_neighbourhood_feed",
            "neighbourhood_id",
            "pinned",
            "created_at",
            "id",
            postgresql_where=VISIBLE_ONLY,
            sqlite_where=VISIBLE_ONLY,
        ),
        Index(
            "ix_posts_district_feed",
            "district_id",
            "pinned",
            "created_at",
            "id",
            postgresql_where=text("status = 'visible' AND neighbourhood_id IS NULL"),
            sqlite_where=text("status = 'visible' AND neighbourhood_id IS NULL"),
        ),
        Index("ix_posts_author", "author_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    board_id: Mapped[str] = mapped_column(String(36), ForeignKey("boards.id"))
    board_kind: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    district_id: Mapped[str] = mapped_column(String(36))
    author_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    image_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    mentioned_handles: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="visible")
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    official_answer_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    topic_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    affair_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Imported posts: the source system's key (unique).
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)


class Revision(Base):
    """An earlier version of a post or comment, kept when it is edited."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("target_type", "target_id", "version", name="uq_revisions_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    image_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    edited_by: Mapped[str] = mapped_column(String(64))
    edited_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_thread", "post_id", "parent_id", "created_at", "id"),
        UniqueConstraint("source_event_id", name="uq_comments_source_event"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    post_id: Mapped[str] = mapped_column(String(36), ForeignKey("posts.id"))
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    board_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    author_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="member")
    status: Mapped[str] = mapped_column(String(16), default="visible")
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Set for system replies made from an incoming event (unique: a redelivery adds nothing).
    source_event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)


class MentionRow(Base):
    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("target_type", "target_id", "person_id", name="uq_mentions_target_person"),
        Index("ix_mentions_person", "person_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    post_id: Mapped[str] = mapped_column(String(36), index=True)
    person_id: Mapped[str] = mapped_column(String(64))
    via_handle: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Like(Base):
    __tablename__ = "likes"

    target_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BoardRead(Base):
    __tablename__ = "board_reads"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    board_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_read_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ContentReport(Base):
    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("target_type", "target_id", "reporter_id", name="uq_reports_target_reporter"),
        Index("ix_reports_queue", "neighbourhood_id", "status", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    post_id: Mapped[str] = mapped_column(String(36))
    board_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    district_id: Mapped[str] = mapped_column(String(36))
    reporter_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="")


class ModerationLog(Base):
    __tablename__ = "moderation_actions"
    __table_args__ = (
        Index("ix_moderation_neighbourhood", "neighbourhood_id", "created_at", "id"),
        Index("ix_moderation_subject", "subject_person_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    post_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    board_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    subject_person_id: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Mute(Base):
    __tablename__ = "mutes"

    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text)
    muted_by: Mapped[str] = mapped_column(String(64))


class Poll(Base):
    __tablename__ = "polls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    post_id: Mapped[str] = mapped_column(String(36), ForeignKey("posts.id"), index=True)
    board_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    topic_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    question: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    max_choices: Mapped[int] = mapped_column(Integer)
    basis: Mapped[str] = mapped_column(String(16))
    hide_results_until_close: Mapped[bool] = mapped_column(Boolean)
    opens_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PollOption(Base):
    __tablename__ = "poll_options"
    __table_args__ = (UniqueConstraint("poll_id", "position", name="uq_poll_options_position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    poll_id: Mapped[str] = mapped_column(String(36), ForeignKey("polls.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100))


class Ballot(Base):
    """One per voter key (a person, or a household): the unique constraint is what makes voting safe
    under concurrency."""

    __tablename__ = "ballots"
    __table_args__ = (UniqueConstraint("poll_id", "voter_key", name="uq_ballots_poll_voter"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    poll_id: Mapped[str] = mapped_column(String(36), ForeignKey("polls.id"))
    voter_key: Mapped[str] = mapped_column(String(80))
    person_id: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cast_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BallotChoice(Base):
    __tablename__ = "ballot_choices"
    __table_args__ = (Index("ix_ballot_choices_tally", "poll_id", "option_id"),)

    ballot_id: Mapped[str] = mapped_column(String(36), ForeignKey("ballots.id"), primary_key=True)
    option_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    poll_id: Mapped[str] = mapped_column(String(36))


class Topic(Base):
    __tablename__ = "topics"
    __table_args__ = (Index("ix_topics_neighbourhood", "neighbourhood_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    post_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    proposer_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    budget_note: Mapped[str] = mapped_column(Text, default="")
    evaluation_summary: Mapped[str] = mapped_column(Text, default="")
    convention_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)


class TopicStepRow(Base):
    __tablename__ = "topic_steps"
    __table_args__ = (UniqueConstraint("topic_id", "seq", name="uq_topic_steps_seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(36), ForeignKey("topics.id"))
    # The step's number in the topic's history: two cadres racing to move a topic collide here.
    seq: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str] = mapped_column(String(32), default="")
    to_stage: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class MilestoneRow(Base):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("topic_id", "position", name="uq_milestones_position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(36), ForeignKey("topics.id"))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TopicRating(Base):
    __tablename__ = "topic_ratings"

    topic_id: Mapped[str] = mapped_column(String(36), ForeignKey("topics.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConventionRow(Base):
    __tablename__ = "conventions"
    __table_args__ = (Index("ix_conventions_neighbourhood", "neighbourhood_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    topic_id: Mapped[str] = mapped_column(String(36), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConventionVersionRow(Base):
    __tablename__ = "convention_versions"

    convention_id: Mapped[str] = mapped_column(String(36), ForeignKey("conventions.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    poll_id: Mapped[str] = mapped_column(String(36))
    tally: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    ballot_count: Mapped[int] = mapped_column(Integer)
    adopted_by: Mapped[str] = mapped_column(String(64))
    adopted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class AffairRow(Base):
    __tablename__ = "affairs"
    __table_args__ = (Index("ix_affairs_neighbourhood", "neighbourhood_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    board_id: Mapped[str] = mapped_column(String(36))
    post_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    policy_basis: Mapped[str] = mapped_column(Text, default="")
    procedure: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(32))
    result_summary: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AffairStep(Base):
    __tablename__ = "affair_steps"
    __table_args__ = (UniqueConstraint("affair_id", "stage", name="uq_affair_steps_stage"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    affair_id: Mapped[str] = mapped_column(String(36), ForeignKey("affairs.id"))
    stage: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class CandidateRow(Base):
    __tablename__ = "affair_candidates"
    __table_args__ = (UniqueConstraint("affair_id", "position", name="uq_affair_candidates_position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    affair_id: Mapped[str] = mapped_column(String(36), ForeignKey("affairs.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    statement: Mapped[str] = mapped_column(Text, default="")
    votes: Mapped[int] = mapped_column(Integer, default=0)
    elected: Mapped[bool] = mapped_column(Boolean, default=False)


# --- projections of other services' events ---------------------------------------------------------


class Member(Base):
    """Verified members (identity.membership.verified / left): households for polls, display names."""

    __tablename__ = "members"
    __table_args__ = (Index("ix_members_household", "household_id"),)

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    household_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    verified_at: Mapped[datetime] = mapped_column(UtcDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RoleHolder(Base):
    """Who holds which role where (identity.role.granted / revoked): resolves @居委会, shows badges."""

    __tablename__ = "role_holders"
    __table_args__ = (Index("ix_role_holders_scope_role", "scope", "role"),)

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")


class IssueLink(Base):
    """issue id → the post it was collected from (issues.issue.reported carries source_post_id)."""

    __tablename__ = "issue_links"

    issue_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    post_id: Mapped[str] = mapped_column(String(36), index=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
