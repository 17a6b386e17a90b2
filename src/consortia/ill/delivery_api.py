"""HTTP routes of electronic delivery: the lender's upload, the reader's link, the download.

Thin: parse, call ``ill.delivery``, commit, format. The download route is declared public because
a link is opened from an e-mail or a browser; it checks the sign-in itself (401), the reader
(403) and the link (404 unknown, 410 expired, used up or replaced), and logs every attempt.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from consortia.accounts.roles import Principal, Role
from consortia.ill import delivery
from consortia.web.deps import allow, get_db, public

router = APIRouter(tags=["resource sharing"])

RequestId = Annotated[int, Path(ge=1, description="The request's id")]
STAFF = (Role.library_staff, Role.library_admin, Role.consortium_admin)
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not the lending library (upload) or not the requesting side (link)"},
    404: {"description": "Unknown request, or no document delivered yet"},
    409: {"description": "The request is a loan, or its state does not allow it"},
    422: {"description": "Not a PDF, encrypted, over the size or page limit; the answer says"},
}


class DocumentOut(BaseModel):
    document_id: int
    request_id: int
    pages: int
    size_bytes: int
    sha256: str
    state: str


class LinkOut(BaseModel):
    request_id: int
    document_id: int
    pages: int
    state: str  # active, expired, exhausted
    created_at: dt.datetime
    expires_at: dt.datetime
    max_downloads: int
    downloads: int
    downloads_left: int
    # Only in the answer that created the link: the token is stored hashed, never shown again.
    url: str | None = None

    @classmethod
    def of(cls, status: delivery.LinkStatus, request: Request) -> LinkOut:
        url = None
        if status.token is not None:
            url = str(request.url_for("download_document", token=status.token))
        return cls(
            request_id=status.request_id,
            document_id=status.document_id,
            pages=status.pages,
            state=status.state,
            created_at=status.created_at,
            expires_at=status.expires_at,
            max_downloads=status.max_downloads,
            downloads=status.downloads,
            downloads_left=max(0, status.max_downloads - status.downloads),
            url=url,
        )


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


@router.post(
    "/api/v1/requests/{request_id}/document",
    response_model=DocumentOut,
    status_code=201,
    responses=ERRORS,
)
def upload_document(
    request_id: RequestId,
    file: Annotated[UploadFile, File(description="The scan, a PDF")],
    source_pages: Annotated[str, Form(max_length=60)] = "",
    db: Session = Depends(get_db),
    principal: Principal = allow(*STAFF),
) -> DocumentOut:
    """The lending library delivers the copy: checked, stamped, the request shipped."""
    done = delivery.upload(db, principal, request_id, file.file, source_pages=source_pages)
    try:
        db.commit()
    except BaseException:
        delivery.discard(done.files)
        raise
    return DocumentOut(
        document_id=done.document_id,
        request_id=done.request_id,
        pages=done.pages,
        size_bytes=done.size_bytes,
        sha256=done.sha256,
        state=done.state,
    )


@router.get("/api/v1/requests/{request_id}/document/link", response_model=LinkOut, responses=ERRORS)
def document_link(
    request_id: RequestId,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.reader, *STAFF),
) -> LinkOut:
    """The reader's download link: created by the first call (the URL is in that answer only),
    its status afterwards."""
    status = delivery.link_for(db, principal, request_id)
    db.commit()
    return LinkOut.of(status, request)


@router.post(
    "/api/v1/requests/{request_id}/document/link", response_model=LinkOut, responses=ERRORS
)
def reissue_document_link(
    request_id: RequestId,
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal = allow(Role.reader, *STAFF),
) -> LinkOut:
    """A new URL for a link whose URL was lost; same expiry, same downloads left."""
    status = delivery.reissue_link(db, principal, request_id)
    db.commit()
    return LinkOut.of(status, request)


@router.get(
    "/download/{token}",
    name="download_document",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The stamped document"},
        401: {"description": "Not signed in"},
        403: {"description": "The link is another reader's"},
        404: {"description": "Unknown link"},
        410: {"description": "Expired, used up or replaced; the answer says which"},
    },
)
def download_document(
    token: Annotated[str, Path(max_length=100)],
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = public(),
) -> FileResponse:
    result = delivery.download(db, principal, token, address=_address(request))
    db.commit()  # the log and the count, refused or not
    if result.error is not None:
        raise result.error
    assert result.path is not None
    return FileResponse(
        result.path,
        media_type=delivery.CONTENT_TYPE,
        filename=result.filename,
        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
    )
