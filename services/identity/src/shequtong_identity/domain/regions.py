"""Rules of the region tree: district → sub-district → neighbourhood."""

from __future__ import annotations

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_kit.auth import DISTRICT_STAFF, Principal
from shequtong_kit.errors import InvalidArgument, PermissionDenied

DISTRICT = identity_pb2.REGION_LEVEL_DISTRICT
SUBDISTRICT = identity_pb2.REGION_LEVEL_SUBDISTRICT
NEIGHBOURHOOD = identity_pb2.REGION_LEVEL_NEIGHBOURHOOD

PARENT_LEVEL: dict[int, int] = {SUBDISTRICT: DISTRICT, NEIGHBOURHOOD: SUBDISTRICT}


def validate_new_region(level: int, code: str, name: str, kind: int, parent_level: int | None) -> None:
    if level not in (DISTRICT, SUBDISTRICT, NEIGHBOURHOOD):
        raise InvalidArgument("level must be district, subdistrict or neighbourhood", code="region_level_invalid")
    if not code.strip() or len(code) > 64:
        raise InvalidArgument("code is required (at most 64 characters)", code="region_code_invalid")
    if not name.strip() or len(name) > 200:
        raise InvalidArgument("name is required (at most 200 characters)", code="region_name_invalid")
    if level == NEIGHBOURHOOD and kind not in (
        common_pb2.NEIGHBOURHOOD_KIND_RESIDENTIAL,
        common_pb2.NEIGHBOURHOOD_KIND_VILLAGE,
    ):
        raise InvalidArgument("a neighbourhood is residential or village", code="neighbourhood_kind_invalid")
    expected_parent = PARENT_LEVEL.get(level)
    if expected_parent is None and parent_level is not None:
        raise InvalidArgument("a district has no parent", code="region_parent_invalid")
    if expected_parent is not None and parent_level != expected_parent:
        raise InvalidArgument("the parent must be one level above", code="region_parent_invalid")


def ensure_may_create(principal: Principal, level: int, district_id: str | None) -> None:
    """Operators build the tree; district staff add sub-districts and neighbourhoods in their district."""
    if principal.is_operator:
        return
    if level != DISTRICT and district_id and principal.has(DISTRICT_STAFF, f"d:{district_id}"):
        return
    raise PermissionDenied("only operators or the district's staff may change the region tree")
