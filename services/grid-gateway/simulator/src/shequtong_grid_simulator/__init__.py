"""Shequtong grid-platform SIMULATOR — a development and test tool, not the real platform.

It stands in for the district grid-management platform (网格化管理平台), the one external
system the project cannot run locally or in CI. It speaks Open311 GeoReport v2 plus
FixMyStreet's servicerequestupdates extension, moves each case through the grid workflow
(受理 → 立案 → 派遣 → 处置 → 核查结案, with 注销 / 退回 / 延期 / 返工), pushes signed status
updates to a webhook, and can misbehave on command (down, slow, failing, duplicate or
out-of-order pushes) through a /_sim control API that the real platform does not have.

Nothing here is a model of any vendor's product beyond the public protocol; never point a
production deployment at it. See README.md beside pyproject.toml.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
