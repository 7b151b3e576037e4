"""district boards and the catalogue; posts, comments, mentions, likes, reads; moderation; polls;
deliberation (topics, steps, milestones, ratings, conventions); open affairs; projections of identity
and issues events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VISIBLE = sa.text("status = 'visible'")
DISTRICT_SCOPE = sa.text("scope = 'district'")
DISTRICT_FEED = sa.text("status = 'visible' AND neighbourhood_id IS NULL")


def _id() -> sa.Column:
    return sa.Column("id", sa.String(36), primary_key=True)


def upgrade() -> None:
    # --- boards: district-scope boards have no neighbourhood ---------------------------------------
    with op.batch_alter_table("boards") as batch:
        batch.add_column(sa.Column("district_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("scope", sa.String(16), nullable=False, server_default="neighbourhood"))
        batch.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="0"))
        batch.alter_column("neighbourhood_id", existing_type=sa.String(36), nullable=True)
    op.execute(
        "UPDATE boards SET district_id = (SELECT r.district_id FROM region_directory r "
        "WHERE r.neighbourhood_id = boards.neighbourhood_id) WHERE district_id IS NULL"
    )
    op.create_index("ix_boards_district_id", "boards", ["district_id"])
    op.create_index(
        "uq_boards_district_kind",
        "boards",
        ["district_id", "kind"],
        unique=True,
        postgresql_where=DISTRICT_SCOPE,
        sqlite_where=DISTRICT_SCOPE,
    )

    op.create_table(
        "catalogue_overrides",
        sa.Column("district_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )

    # --- posts and comments --------------------------------------------------------------------------
    op.create_table(
        "posts",
        _id(),
        sa.Column("board_id", sa.String(36), sa.ForeignKey("boards.id"), nullable=False),
        sa.Column("board_kind", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("image_refs", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("mentioned_handles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("like_count", sa.Integer, nullable=False),
        sa.Column("comment_count", sa.Integer, nullable=False),
        sa.Column("official_answer_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("topic_id", sa.String(36), nullable=True),
        sa.Column("affair_id", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("edited_at", UtcDateTime, nullable=True),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.Column("deleted_by", sa.String(64), nullable=True),
    )
    for name, column in (
        ("ix_posts_board_feed", "board_id"),
        ("ix_posts_neighbourhood_feed", "neighbourhood_id"),
    ):
        op.create_index(
            name, "posts", [column, "pinned", "created_at", "id"], postgresql_where=VISIBLE, sqlite_where=VISIBLE
        )
    op.create_index(
        "ix_posts_district_feed",
        "posts",
        ["district_id", "pinned", "created_at", "id"],
        postgresql_where=DISTRICT_FEED,
        sqlite_where=DISTRICT_FEED,
    )
    op.create_index("ix_posts_author", "posts", ["author_id", "created_at"])

    op.create_table(
        "revisions",
        _id(),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("image_refs", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("edited_by", sa.String(64), nullable=False),
        sa.Column("edited_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("target_type", "target_id", "version", name="uq_revisions_version"),
    )

    op.create_table(
        "comments",
        _id(),
        sa.Column("post_id", sa.String(36), sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("board_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("like_count", sa.Integer, nullable=False),
        sa.Column("reply_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source_event_id", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("edited_at", UtcDateTime, nullable=True),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.UniqueConstraint("source_event_id", name="uq_comments_source_event"),
    )
    op.create_index("ix_comments_thread", "comments", ["post_id", "parent_id", "created_at", "id"])

    op.create_table(
        "mentions",
        _id(),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("post_id", sa.String(36), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("via_handle", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("target_type", "target_id", "person_id", name="uq_mentions_target_person"),
    )
    op.create_index("ix_mentions_post_id", "mentions", ["post_id"])
    op.create_index("ix_mentions_person", "mentions", ["person_id", "created_at"])

    op.create_table(
        "likes",
        sa.Column("target_type", sa.String(16), primary_key=True),
        sa.Column("target_id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "board_reads",
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("board_id", sa.String(36), primary_key=True),
        sa.Column("last_read_at", UtcDateTime, nullable=False),
    )

    # --- moderation ----------------------------------------------------------------------------------
    op.create_table(
        "reports",
        _id(),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("post_id", sa.String(36), nullable=False),
        sa.Column("board_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("reporter_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", UtcDateTime, nullable=True),
        sa.Column("resolution", sa.Text, nullable=False),
        sa.UniqueConstraint("target_type", "target_id", "reporter_id", name="uq_reports_target_reporter"),
    )
    op.create_index("ix_reports_queue", "reports", ["neighbourhood_id", "status", "created_at", "id"])

    op.create_table(
        "moderation_actions",
        _id(),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("post_id", sa.String(36), nullable=True),
        sa.Column("board_id", sa.String(36), nullable=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("subject_person_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("until", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_moderation_neighbourhood", "moderation_actions", ["neighbourhood_id", "created_at", "id"])
    op.create_index("ix_moderation_subject", "moderation_actions", ["subject_person_id", "created_at", "id"])

    op.create_table(
        "mutes",
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("until", UtcDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("muted_by", sa.String(64), nullable=False),
    )

    # --- polls ---------------------------------------------------------------------------------------
    op.create_table(
        "polls",
        _id(),
        sa.Column("post_id", sa.String(36), sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("board_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("topic_id", sa.String(36), nullable=True),
        sa.Column("question", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("max_choices", sa.Integer, nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("hide_results_until_close", sa.Boolean, nullable=False),
        sa.Column("opens_at", UtcDateTime, nullable=False),
        sa.Column("closes_at", UtcDateTime, nullable=False),
        sa.Column("closed_at", UtcDateTime, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_polls_post_id", "polls", ["post_id"])
    op.create_index("ix_polls_topic_id", "polls", ["topic_id"])
    op.create_table(
        "poll_options",
        _id(),
        sa.Column("poll_id", sa.String(36), sa.ForeignKey("polls.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.UniqueConstraint("poll_id", "position", name="uq_poll_options_position"),
    )
    op.create_index("ix_poll_options_poll_id", "poll_options", ["poll_id"])
    op.create_table(
        "ballots",
        _id(),
        sa.Column("poll_id", sa.String(36), sa.ForeignKey("polls.id"), nullable=False),
        sa.Column("voter_key", sa.String(80), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(36), nullable=True),
        sa.Column("cast_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("poll_id", "voter_key", name="uq_ballots_poll_voter"),
    )
    op.create_table(
        "ballot_choices",
        sa.Column("ballot_id", sa.String(36), sa.ForeignKey("ballots.id"), primary_key=True),
        sa.Column("option_id", sa.String(36), primary_key=True),
        sa.Column("poll_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_ballot_choices_tally", "ballot_choices", ["poll_id", "option_id"])

    # --- deliberation --------------------------------------------------------------------------------
    op.create_table(
        "topics",
        _id(),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("post_id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("proposer_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("budget_note", sa.Text, nullable=False),
        sa.Column("evaluation_summary", sa.Text, nullable=False),
        sa.Column("convention_id", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_topics_neighbourhood", "topics", ["neighbourhood_id", "created_at", "id"])
    op.create_table(
        "topic_steps",
        _id(),
        sa.Column("topic_id", sa.String(36), sa.ForeignKey("topics.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("from_stage", sa.String(32), nullable=False),
        sa.Column("to_stage", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("topic_id", "seq", name="uq_topic_steps_seq"),
    )
    op.create_table(
        "milestones",
        _id(),
        sa.Column("topic_id", sa.String(36), sa.ForeignKey("topics.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=True),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=True),
        sa.UniqueConstraint("topic_id", "position", name="uq_milestones_position"),
    )
    op.create_table(
        "topic_ratings",
        sa.Column("topic_id", sa.String(36), sa.ForeignKey("topics.id"), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "conventions",
        _id(),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("topic_id", sa.String(36), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_conventions_neighbourhood", "conventions", ["neighbourhood_id", "created_at", "id"])
    op.create_table(
        "convention_versions",
        sa.Column("convention_id", sa.String(36), sa.ForeignKey("conventions.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("poll_id", sa.String(36), nullable=False),
        sa.Column("tally", sa.JSON, nullable=False),
        sa.Column("ballot_count", sa.Integer, nullable=False),
        sa.Column("adopted_by", sa.String(64), nullable=False),
        sa.Column("adopted_at", UtcDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )

    # --- open affairs --------------------------------------------------------------------------------
    op.create_table(
        "affairs",
        _id(),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("board_id", sa.String(36), nullable=False),
        sa.Column("post_id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("policy_basis", sa.Text, nullable=False),
        sa.Column("procedure", sa.Text, nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("result_summary", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_affairs_neighbourhood", "affairs", ["neighbourhood_id", "created_at", "id"])
    op.create_table(
        "affair_steps",
        _id(),
        sa.Column("affair_id", sa.String(36), sa.ForeignKey("affairs.id"), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("affair_id", "stage", name="uq_affair_steps_stage"),
    )
    op.create_table(
        "affair_candidates",
        _id(),
        sa.Column("affair_id", sa.String(36), sa.ForeignKey("affairs.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("votes", sa.Integer, nullable=False),
        sa.Column("elected", sa.Boolean, nullable=False),
        sa.UniqueConstraint("affair_id", "position", name="uq_affair_candidates_position"),
    )

    # --- projections ---------------------------------------------------------------------------------
    op.create_table(
        "members",
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("household_id", sa.String(36), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("verified_at", UtcDateTime, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_index("ix_members_household", "members", ["household_id"])
    op.create_table(
        "role_holders",
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False),
    )
    op.create_index("ix_role_holders_scope_role", "role_holders", ["scope", "role"])
    op.create_table(
        "issue_links",
        sa.Column("issue_id", sa.String(36), primary_key=True),
        sa.Column("post_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_issue_links_post_id", "issue_links", ["post_id"])


def downgrade() -> None:
    for table in (
        "issue_links",
        "role_holders",
        "members",
        "affair_candidates",
        "affair_steps",
        "affairs",
        "convention_versions",
        "conventions",
        "topic_ratings",
        "milestones",
        "topic_steps",
        "topics",
        "ballot_choices",
        "ballots",
        "poll_options",
        "polls",
        "mutes",
        "moderation_actions",
        "reports",
        "board_reads",
        "likes",
        "mentions",
        "comments",
        "revisions",
        "posts",
        "catalogue_overrides",
    ):
        op.drop_table(table)
    op.drop_index("uq_boards_district_kind", table_name="boards")
    op.drop_index("ix_boards_district_id", table_name="boards")
    op.execute("DELETE FROM boards WHERE neighbourhood_id IS NULL")
    with op.batch_alter_table("boards") as batch:
        batch.alter_column("neighbourhood_id", existing_type=sa.String(36), nullable=False)
        batch.drop_column("position")
        batch.drop_column("scope")
        batch.drop_column("district_id")
