"""CSV import of the region tree and of households: row-by-row validation and the plan."""

from shequtong_identity.domain import imports
from shequtong_identity.domain import regions as region_rules

from shequtong.common.v1 import common_pb2

TREE = """level,code,name,parent_code,kind
district,310113,宝山区,,
subdistrict,310113103,淞南镇,310113,
neighbourhood,310113103001,淞南十村,310113103,residential
村,310113103002,塘湾村,310113103,
"""


def codes(errors: imports.Errors) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.code) for e in errors.items]


def test_a_tree_is_planned_parents_first() -> None:
    data = ("\ufeff" + TREE).encode()
    # Children listed before their parents still land after them.
    shuffled = "\n".join([TREE.splitlines()[0], *reversed(TREE.splitlines()[1:])]).encode()
    for csv_bytes in (data, shuffled):
        plan = imports.plan_regions(csv_bytes, {})
        assert not plan.errors, codes(plan.errors)
        assert plan.rows == 4 and plan.skipped == 0
        assert [r.code for r in plan.create][:2] == ["310113", "310113103"]
        assert {r.code for r in plan.create[2:]} == {"310113103001", "310113103002"}
    village = imports.plan_regions(data, {}).create[-1]
    assert village.kind == common_pb2.NEIGHBOURHOOD_KIND_VILLAGE and village.row == 5


def test_rows_that_exist_are_skipped_and_counted() -> None:
    existing = {
        "310113": imports.ExistingRegion("d", region_rules.DISTRICT, ""),
        "310113103": imports.ExistingRegion("s", region_rules.SUBDISTRICT, "310113"),
    }
    plan = imports.plan_regions(TREE.encode(), existing)
    assert not plan.errors and plan.skipped == 2
    assert [r.code for r in plan.create] == ["310113103001", "310113103002"]
    again = imports.plan_regions(
        TREE.encode(),
        {
            **existing,
            "310113103001": imports.ExistingRegion("n1", region_rules.NEIGHBOURHOOD, "310113103"),
            "310113103002": imports.ExistingRegion("n2", region_rules.NEIGHBOURHOOD, "310113103"),
        },
    )
    assert again.create == [] and again.skipped == 4 and not again.errors


def test_every_bad_row_is_reported_with_its_row_and_nothing_is_planned() -> None:
    data = """level,code,name,parent_code,kind
district,D1,一区,,
county,X1,错级,D1,
subdistrict,,无码,D1,
subdistrict,S1,,D1,
neighbourhood,N1,无类,S1,
neighbourhood,N2,错类,S1,farm
district,D2,有父,D1,
subdistrict,S2,无父,,
neighbourhood,N3,找不到,NOPE,residential
neighbourhood,N4,父错级,D1,residential
subdistrict,S1,重复,D1,
a,b,c,d,e,f
subdistrict,S1,十三,D1,
"""
    plan = imports.plan_regions(data.encode(), {})
    assert plan.create == []
    assert codes(plan.errors) == [
        (3, "level", "level_invalid"),
        (4, "code", "code_invalid"),
        (5, "name", "name_invalid"),
        (6, "kind", "kind_invalid"),
        (7, "kind", "kind_invalid"),
        (8, "parent_code", "parent_invalid"),
        (9, "parent_code", "parent_required"),
        (10, "parent_code", "parent_not_found"),
        (11, "parent_code", "parent_level_invalid"),
        (13, "", "too_many_columns"),
        (14, "code", "code_repeated"),
    ]
    assert plan.rows == 13


def test_a_repeated_identical_row_is_skipped_and_a_conflict_with_the_store_is_an_error() -> None:
    data = "district,D1,一区,,\ndistrict,D1,一区,,\nsubdistrict,S1,街道,D1,\n"
    plan = imports.plan_regions(data.encode(), {})
    assert not plan.errors and plan.skipped == 1 and len(plan.create) == 2
    clash = imports.plan_regions(data.encode(), {"S1": imports.ExistingRegion("s", region_rules.SUBDISTRICT, "OTHER")})
    assert codes(clash.errors) == [(3, "code", "code_conflict")]


def test_files_that_are_not_csv_text() -> None:
    assert codes(imports.plan_regions(b"\xff\xfe\x00bad", {}).errors) == [(0, "", "encoding_invalid")]
    assert codes(imports.plan_regions(b"level,code,name,parent_code,kind\n\n", {}).errors) == [(0, "", "empty")]


def test_errors_are_capped_but_counted() -> None:
    data = "\n".join(f"nowhere,C{i},x,," for i in range(imports.MAX_ERRORS + 5)).encode()
    plan = imports.plan_regions(data, {})
    assert len(plan.errors.items) == imports.MAX_ERRORS and plan.errors.count == imports.MAX_ERRORS + 5


HOUSEHOLDS = """neighbourhood_code,building,unit,room,village_group,house_number
N1,12号楼,2,301,,
N1,１２号楼,2,301,,
N2,,,,3组,18号
N1,12号楼,,302,,
"""


def test_households_are_planned_by_address_and_repeats_are_skipped() -> None:
    plan = imports.plan_households(HOUSEHOLDS.encode(), {"N1": "n1", "N2": "n2"}, set())
    assert not plan.errors
    assert plan.rows == 4 and plan.skipped == 1  # the full-width "１２号楼" is the same address
    assert [(row.row, nid) for row, nid in plan.create] == [(2, "n1"), (4, "n2"), (5, "n1")]
    stored = {("n1", plan.create[0][0].address.key)}
    again = imports.plan_households(HOUSEHOLDS.encode(), {"N1": "n1", "N2": "n2"}, stored)
    assert again.skipped == 2 and len(again.create) == 2


def test_bad_household_rows() -> None:
    data = "N1,12号楼,,,,\nN9,1,,1,,\n,1,,1,,\nN1,1,,1,3组,\n"
    plan = imports.plan_households(data.encode(), {"N1": "n1"}, set())
    assert plan.create == []
    assert codes(plan.errors) == [
        (1, "address", "address_invalid"),
        (2, "neighbourhood_code", "neighbourhood_not_found"),
        (3, "neighbourhood_code", "code_invalid"),
        (4, "address", "address_invalid"),
    ]
