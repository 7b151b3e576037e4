"""Bulk import for operators: a region tree or households from CSV (text/csv body or a multipart upload)."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.problems import ApiProblem
from shequtong_api_gateway.routing import gateway_router

router = gateway_router(prefix="/v1/imports", tags=["imports"])

REGIONS_EXAMPLE = """level,code,name,parent_code,kind
district,310113,宝山区,,
subdistrict,310113103,淞南镇,310113,
neighbourhood,310113103001,淞南十村,310113103,residential
neighbourhood,310113103002,塘湾村,310113103,village
"""
HOUSEHOLDS_EXAMPLE = """neighbourhood_code,building,unit,room,village_group,house_number
310113103001,12号楼,2,301,,
310113103002,,,,3组,18号
"""


def _body(example: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": example},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    }


class RowErrorOut(BaseModel):
    row: int = Field(description="As a spreadsheet numbers it: the header is row 1 (0: the whole file)")
    column: str
    code: str = Field(examples=["parent_not_found"])
    message: str


class ImportReportOut(BaseModel):
    rows: int = Field(description="Data rows read")
    created: int = Field(description="Created (a dry run: would be created)")
    skipped: int = Field(description="Already there, or repeating an earlier row")
    applied: bool = Field(description="Written (no errors and not a dry run)")
    error_count: int
    errors: list[RowErrorOut]


def report_out(report: identity_pb2.ImportReport) -> ImportReportOut:
    return ImportReportOut(
        rows=report.rows,
        created=report.created,
        skipped=report.skipped,
        applied=report.applied,
        error_count=report.error_count,
        errors=[RowErrorOut(row=e.row, column=e.column, code=e.code, message=e.message) for e in report.errors],
    )


async def _csv(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiProblem(400, "file_required", "upload the CSV as the form field `file`")
        return await upload.read()
    if content_type in ("text/csv", "text/plain", "application/octet-stream"):
        return await request.body()
    raise ApiProblem(415, "unsupported_media_type", "send text/csv, or multipart/form-data with a `file`")


def _answer(report: identity_pb2.ImportReport) -> ImportReportOut:
    out = report_out(report)
    if out.error_count:
        raise ApiProblem(
            422,
            "import_rows_invalid",
            f"{out.error_count} row error(s); nothing was written",
            report=out.model_dump(),
        )
    return out


@router.post(
    "/regions",
    response_model=ImportReportOut,
    summary="Import a region tree from CSV (operators)",
    description="Columns `level,code,name,parent_code,kind` (header optional; UTF-8, a BOM is fine). Levels "
    "district / subdistrict / neighbourhood (or 区 / 街镇 / 居委 / 村); kind residential or village for "
    "neighbourhoods. Parents may be in the file or already stored. Every row is validated first: any error → "
    "422 `import_rows_invalid` with the errors by row, and nothing is written. Otherwise the whole tree is "
    "written in one transaction, each new neighbourhood announced (identity.neighbourhood.created). Codes that "
    "exist at the same place are skipped and counted, so the same file can be sent again.",
    openapi_extra=_body(REGIONS_EXAMPLE),
)
async def import_regions(
    request: Request, caller: SignedIn, dry_run: bool = Query(default=False, description="Validate and count only")
) -> ImportReportOut:
    data = await _csv(request)
    reply = await caller.call(
        caller.clients.identity.ImportRegions,
        identity_pb2.ImportRegionsRequest(csv=data, dry_run=dry_run),
        deadline=120.0,
    )
    return _answer(reply.report)


@router.post(
    "/households",
    response_model=ImportReportOut,
    summary="Import households from CSV (operators)",
    description="Columns `neighbourhood_code,building,unit,room,village_group,house_number`: building (+ unit) "
    "+ room, or village group + house number. Every row is validated first: any error → 422 "
    "`import_rows_invalid`, nothing written. Then households are written in transactions of 500 (each with its "
    "identity.household.created events); if the import is interrupted, sending the same file again completes it "
    "(addresses that exist are skipped and counted). Split very large files (the request body limit applies).",
    openapi_extra=_body(HOUSEHOLDS_EXAMPLE),
)
async def import_households(
    request: Request, caller: SignedIn, dry_run: bool = Query(default=False, description="Validate and count only")
) -> ImportReportOut:
    data = await _csv(request)
    reply = await caller.call(
        caller.clients.identity.ImportHouseholds,
        identity_pb2.ImportHouseholdsRequest(csv=data, dry_run=dry_run),
        deadline=300.0,
    )
    return _answer(reply.report)
