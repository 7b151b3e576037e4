"""The board catalogue every neighbourhood gets. Policies are data; the boards issue makes them editable
per district — this first version is the reference district's default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoardKind:
    key: str
    name: str


DEFAULT_CATALOGUE: tuple[BoardKind, ...] = (
    BoardKind("announcements", "社区公告"),
    BoardKind("party_building", "党建园地"),
    BoardKind("deliberation_hall", "议事厅"),
    BoardKind("affairs_disclosure", "居务公开"),
    BoardKind("property_window", "物业之窗"),
    BoardKind("owners_committee_line", "业委连线"),
    BoardKind("police_line", "警民直通车"),
    BoardKind("family_doctor", "家庭医生"),
    BoardKind("legal_service", "公共法律服务"),
    BoardKind("neighbourhood_matters", "身边事"),
)
