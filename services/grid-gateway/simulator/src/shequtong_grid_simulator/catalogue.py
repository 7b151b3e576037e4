"""The service catalogue (grid event and component categories) the simulator offers.

The built-in default follows the published city-manual codes from the reference notes
(事件 01-01 私搭乱建 … 05-04 乱停放, and the six 部件 component classes). Districts load their
own catalogue, so SIMULATOR_SERVICES_FILE can replace it with a JSON list of Open311 service
objects; two simulator-only keys per service are honoured and never served:
`time_limit_hours` (sets expected_datetime at 立案) and `departments` (who 派遣 dispatches to,
in turn, so a 退回 case is re-dispatched to the next one).

The time limits and department names of the default are placeholders: the notes quote only a
few limits (exposed rubbish 1 working day, dirty road 5 working hours, illegal structure
15 working days), and the simulator counts calendar hours, not working hours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATATYPES = frozenset({"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"})


class CatalogueError(ValueError):
    """The catalogue file cannot be used."""


@dataclass(frozen=True)
class Attribute:
    code: str
    datatype: str = "string"
    required: bool = False
    description: str = ""
    datatype_description: str = ""
    order: int = 1
    variable: bool = True
    values: tuple[tuple[str, str], ...] = ()

    def definition(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "code": self.code,
            "datatype": self.datatype,
            "required": self.required,
            "datatype_description": self.datatype_description or None,
            "order": self.order,
            "description": self.description,
            "values": [{"key": k, "name": n} for k, n in self.values],
        }


@dataclass(frozen=True)
class Service:
    service_code: str
    service_name: str
    description: str = ""
    group: str = ""
    keywords: tuple[str, ...] = ()
    type: str = "realtime"
    attributes: tuple[Attribute, ...] = ()
    time_limit_hours: float = 24.0
    departments: tuple[str, ...] = ("区城管执法局",)
    service_notice: str = ""

    def listing(self) -> dict[str, Any]:
        return {
            "service_code": self.service_code,
            "service_name": self.service_name,
            "description": self.description,
            "metadata": bool(self.attributes),
            "type": self.type,
            "keywords": ",".join(self.keywords),
            "group": self.group,
        }

    def definition(self) -> dict[str, Any]:
        return {
            "service_code": self.service_code,
            "attributes": [a.definition() for a in sorted(self.attributes, key=lambda a: a.order)],
        }


@dataclass(frozen=True)
class Catalogue:
    services: tuple[Service, ...]
    _by_code: dict[str, Service] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Service] = {}
        for s in self.services:
            if s.service_code in by_code:
                raise CatalogueError(f"duplicate service_code {s.service_code!r}")
            by_code[s.service_code] = s
        object.__setattr__(self, "_by_code", by_code)

    def get(self, code: str) -> Service | None:
        return self._by_code.get(code)


# Attributes our grid gateway sends on every dispatch. issue_id/ticket_id are what the
# simulator de-duplicates on, as a careful real platform would on its own case reference.
_COMMON = (
    Attribute("issue_id", description="社区通 issue id (our side's reference)", order=1),
    Attribute("ticket_id", description="社区通 dispatch ticket id", order=2),
    Attribute(
        "grid_code",
        description="单元网格编码 unit-grid code",
        datatype_description="15 digits",
        order=3,
    ),
)
_COMPONENT = (
    *_COMMON,
    Attribute(
        "component_id",
        required=True,
        description="部件编码 component id",
        datatype_description="16 digits: county(6) + major(2) + minor(2) + sequence(6)",
        order=4,
    ),
)

# (code, name, english, time limit hours, departments)
_EVENTS: dict[str, tuple[str, list[tuple[str, str, str, float, tuple[str, ...]]]]] = {
    "01": (
        "市容环境",
        [
            ("01-01", "私搭乱建", "illegal structures", 360, ("城管执法中队", "街镇规划建设办")),
            ("01-02", "暴露垃圾", "exposed rubbish", 24, ("市容环境事务所", "城管执法中队")),
            ("01-03", "积存垃圾渣土", "piled waste", 48, ("市容环境事务所", "城管执法中队")),
            ("01-04", "道路不洁", "dirty road", 5, ("道路保洁公司", "市容环境事务所")),
            ("01-05", "水域不洁", "dirty waterway", 24, ("河道管理所", "水务站")),
            ("01-06", "绿地脏乱", "dirty green space", 24, ("绿化管理所", "市容环境事务所")),
        ],
    ),
    "02": (
        "宣传广告",
        [
            ("02-01", "非法小广告", "illegal flyers", 48, ("城管执法中队", "市容环境事务所")),
            ("02-02", "违章张贴悬挂广告牌匾", "unauthorised signs", 72, ("城管执法中队", "市场监管所")),
            ("02-03", "占道广告牌", "signs blocking the road", 24, ("城管执法中队", "道路管理所")),
        ],
    ),
    "03": (
        "施工管理",
        [
            ("03-01", "施工扰民", "construction nuisance", 24, ("建设工程管理所", "生态环境所")),
            ("03-02", "工地扬尘", "site dust", 24, ("建设工程管理所", "生态环境所")),
            ("03-03", "施工废弃料", "construction waste", 48, ("建设工程管理所", "城管执法中队")),
            ("03-04", "施工占道", "works blocking the road", 24, ("道路管理所", "交警支队")),
        ],
    ),
    "04": (
        "突发事件",
        [
            ("04-01", "路面塌陷", "road collapse", 2, ("道路养护公司", "道路管理所")),
            ("04-02", "自来水管破裂", "burst water main", 2, ("自来水公司", "水务站")),
            ("04-03", "燃气管道破裂", "burst gas pipe", 1, ("燃气公司", "应急管理所")),
            ("04-04", "道路积水", "road flooding", 4, ("排水管理所", "道路养护公司")),
        ],
    ),
    "05": (
        "街面秩序",
        [
            ("05-01", "无照经营游商", "unlicensed hawkers", 2, ("城管执法中队", "市场监管所")),
            ("05-02", "流浪乞讨", "begging", 4, ("民政救助站", "派出所")),
            ("05-03", "店外经营", "trading outside shop", 4, ("城管执法中队", "市场监管所")),
            ("05-04", "乱停放", "illegal parking", 2, ("交警支队", "派出所")),
        ],
    ),
}

_COMPONENTS = [
    ("C-01", "公用设施", "public utilities", 72, ("公用事业管理所", "自来水公司")),
    ("C-02", "道路交通", "roads and traffic", 72, ("道路管理所", "交警支队")),
    ("C-03", "市容环境", "appearance facilities", 72, ("市容环境事务所",)),
    ("C-04", "园林绿化", "landscaping", 72, ("绿化管理所",)),
    ("C-05", "房屋土地", "buildings and land", 120, ("房管所", "街镇规划建设办")),
    ("C-06", "其他设施", "other facilities", 120, ("街镇网格中心",)),
]


def default_catalogue() -> Catalogue:
    services: list[Service] = []
    for major, (class_name, subs) in _EVENTS.items():
        for code, name, english, hours, departments in subs:
            services.append(
                Service(
                    service_code=code,
                    service_name=name,
                    description=f"事件 {major} {class_name} / {name} ({english})",
                    group=f"事件 {major} {class_name}",
                    keywords=(class_name, name, english),
                    attributes=_COMMON,
                    time_limit_hours=hours,
                    departments=departments,
                    service_notice=f"网格中心已受理（模拟）；处置时限 {hours:g} 小时",
                )
            )
    for code, name, english, hours, departments in _COMPONENTS:
        services.append(
            Service(
                service_code=code,
                service_name=f"部件 {name}",
                description=f"部件 {name} ({english}) — report the 16-digit component id",
                group="部件 components",
                keywords=("部件", name, english),
                attributes=_COMPONENT,
                time_limit_hours=hours,
                departments=departments,
                service_notice=f"网格中心已受理（模拟）；处置时限 {hours:g} 小时",
            )
        )
    return Catalogue(tuple(services))


def load_catalogue(path: str | Path | None) -> Catalogue:
    if not path:
        return default_catalogue()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"cannot read services file {path}: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise CatalogueError("the services file must hold a non-empty JSON list of services")
    return Catalogue(tuple(_service_from_json(item, i) for i, item in enumerate(raw)))


def _service_from_json(item: Any, index: int) -> Service:
    where = f"services[{index}]"
    if not isinstance(item, dict):
        raise CatalogueError(f"{where} must be an object")
    for key in ("service_code", "service_name"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise CatalogueError(f"{where}.{key} is required")
    keywords = item.get("keywords", "")
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",") if k.strip()]
    departments = item.get("departments") or ["区城管执法局"]
    if not isinstance(departments, list) or not all(isinstance(d, str) and d for d in departments):
        raise CatalogueError(f"{where}.departments must be a list of names")
    try:
        time_limit = float(item.get("time_limit_hours", 24))
    except (TypeError, ValueError):
        raise CatalogueError(f"{where}.time_limit_hours must be a number") from None
    if item.get("type", "realtime") not in ("realtime", "batch", "blackbox"):
        raise CatalogueError(f"{where}.type must be realtime, batch or blackbox")
    return Service(
        service_code=item["service_code"].strip(),
        service_name=item["service_name"].strip(),
        description=str(item.get("description", "")),
        group=str(item.get("group", "")),
        keywords=tuple(str(k) for k in keywords),
        type=item.get("type", "realtime"),
        attributes=tuple(
            _attribute_from_json(a, f"{where}.attributes[{j}]") for j, a in enumerate(item.get("attributes", []))
        ),
        time_limit_hours=time_limit,
        departments=tuple(departments),
        service_notice=str(item.get("service_notice", "")),
    )


def _attribute_from_json(item: Any, where: str) -> Attribute:
    if not isinstance(item, dict) or not isinstance(item.get("code"), str) or not item["code"]:
        raise CatalogueError(f"{where} needs a code")
    datatype = item.get("datatype", "string")
    if datatype not in DATATYPES:
        raise CatalogueError(f"{where}.datatype must be one of {sorted(DATATYPES)}")
    values = tuple((str(v["key"]), str(v.get("name", v["key"]))) for v in item.get("values", []))
    return Attribute(
        code=item["code"],
        datatype=datatype,
        required=bool(item.get("required", False)),
        description=str(item.get("description", "")),
        datatype_description=str(item.get("datatype_description") or ""),
        order=int(item.get("order", 1)),
        variable=bool(item.get("variable", True)),
        values=values,
    )
