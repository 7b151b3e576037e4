"""the default category catalogue (district_id ""), from ../shared/reference/grid-and-open311.md

Resident-facing categories, each mapped to the grid platform's event code (事件 major-minor, e.g. 01-02
暴露垃圾) so a dispatch carries the grid's own service_code. Response within 15 hours (the reference
district's promise; emergencies within 1 hour), resolution targets per category. Districts load their own
catalogue through the API; this one applies to every district without one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAMESPACE = uuid.UUID("5b0f6f1e-6a39-4c39-9b7e-6f0a3d1c2e10")

# code, name, grid service code, grid service name, response h, resolution h, keywords
DEFAULT = [
    ("rubbish", "垃圾乱堆乱放", "01-02", "暴露垃圾", 15, 48, ["垃圾", "垃圾桶", "乱扔", "异味", "垃圾箱"]),
    ("piled_waste", "建筑垃圾渣土", "01-03", "积存垃圾渣土", 15, 72, ["渣土", "建筑垃圾", "装修垃圾", "大件垃圾"]),
    ("illegal_structure", "违章搭建", "01-01", "私搭乱建", 15, 360, ["违建", "违章", "搭建", "私搭", "乱搭"]),
    ("dirty_road", "道路不洁", "01-04", "道路不洁", 15, 24, ["路面脏", "油污", "道路不洁", "马路脏"]),
    ("dirty_waterway", "河道水域不洁", "01-05", "水域不洁", 15, 72, ["河道", "河浜", "水面", "漂浮物", "水体发臭"]),
    ("green_space", "绿地脏乱", "01-06", "绿地脏乱", 15, 72, ["绿地", "草坪", "绿化带"]),
    ("flyers", "乱贴小广告", "02-01", "非法小广告", 15, 72, ["小广告", "牛皮癣", "乱贴", "张贴"]),
    ("signs", "违规广告牌匾", "02-02", "违章张贴悬挂广告牌匾", 15, 120, ["广告牌", "招牌", "牌匾", "横幅"]),
    ("construction_noise", "施工扰民", "03-01", "施工扰民", 15, 48, ["施工", "噪音", "扰民", "夜间施工", "噪声"]),
    ("construction_dust", "工地扬尘", "03-02", "工地扬尘", 15, 48, ["扬尘", "灰尘", "工地"]),
    ("road_collapse", "路面塌陷", "04-01", "路面塌陷", 1, 24, ["塌陷", "路面破损", "大坑", "窨井"]),
    ("water_main", "自来水管破裂", "04-02", "自来水管破裂", 1, 24, ["水管", "爆管", "漏水", "自来水"]),
    ("gas_leak", "燃气管道破裂", "04-03", "燃气管道破裂", 1, 12, ["燃气", "煤气", "漏气", "天然气"]),
    ("flooding", "道路积水", "04-04", "道路积水", 1, 24, ["积水", "淹水", "下水道", "排水", "堵塞"]),
    ("hawkers", "无证摊贩", "05-01", "无照经营游商", 15, 48, ["摆摊", "游商", "小贩", "流动摊"]),
    ("trading_outside", "店外经营", "05-03", "店外经营", 15, 48, ["占道经营", "店外", "出店经营"]),
    ("illegal_parking", "车辆乱停放", "05-04", "乱停放", 15, 48, ["停车", "乱停", "占道停车", "非机动车", "僵尸车"]),
    ("other", "其他问题", "", "", 15, 168, []),
]


def _table() -> sa.Table:
    return sa.table(
        "issue_categories",
        sa.column("id", sa.String),
        sa.column("district_id", sa.String),
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("grid_service_code", sa.String),
        sa.column("grid_service_name", sa.String),
        sa.column("response_hours", sa.Float),
        sa.column("resolution_hours", sa.Float),
        sa.column("keywords", sa.JSON),
        sa.column("active", sa.Boolean),
        sa.column("sort_order", sa.Integer),
        sa.column("updated_at", UtcDateTime),
    )


def upgrade() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    op.bulk_insert(
        _table(),
        [
            {
                "id": str(uuid.uuid5(NAMESPACE, code)),
                "district_id": "",
                "code": code,
                "name": name,
                "grid_service_code": grid_code,
                "grid_service_name": grid_name,
                "response_hours": float(response),
                "resolution_hours": float(resolution),
                "keywords": keywords,
                "active": True,
                "sort_order": (index + 1) * 10,
                "updated_at": now,
            }
            for index, (code, name, grid_code, grid_name, response, resolution, keywords) in enumerate(DEFAULT)
        ],
    )


def downgrade() -> None:
    table = _table()
    op.execute(table.delete().where(table.c.district_id == ""))
