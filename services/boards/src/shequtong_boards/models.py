from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class Board(Base):
    __tablename__ = "boards"
    __table_args__ = (UniqueConstraint("neighbourhood_id", "kind", name="uq_boards_neighbourhood_kind"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
