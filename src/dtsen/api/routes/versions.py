"""Published versions: the list, a version's manifest (the caller's programs only), and a program's
Parquet file, streamed with its manifest checksum (a disclosure, logged)."""

import base64
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dtsen.api import disclosure
from dtsen.api.deps import AppState, Caller, fail, program_of, version_of

router = APIRouter()


@router.get("/registry/versions")
def versions(client: Caller, app: AppState):
    with app.pool.connection() as conn:
        rows = conn.execute(
            "SELECT version, published_at FROM publish.version WHERE status IN ('PUBLISHED', 'SUPERSEDED') ORDER BY version"
        ).fetchall()
    return [{"version": v, "published_at": p.isoformat(timespec="seconds") if p else None} for v, p in rows]


@router.get("/registry/versions/{version}/manifest")
def manifest(version: int, client: Caller, app: AppState):
    with app.pool.connection() as conn:
        number = version_of(conn, version)
        document = conn.execute(
            "SELECT manifest FROM publish.version WHERE version = %s", (number,)
        ).fetchone()[0]
    mine = {k: v for k, v in (document.get("programs") or {}).items() if k in client.programs}
    files = {
        k: v
        for k, v in (document.get("files") or {}).items()
        if not k.startswith("programs/") or Path(k).stem in client.programs
    }
    return document | {"programs": mine, "files": files}


@router.get("/registry/versions/{version}/programs/{name}")
def program_file(version: int, name: str, request: Request, client: Caller, app: AppState):
    program = program_of(app, client, name.removesuffix(".parquet"))
    with app.pool.connection() as conn:
        number = version_of(conn, version)
        document, folder = conn.execute(
            "SELECT manifest, path FROM publish.version WHERE version = %s", (number,)
        ).fetchone()
        digest = (document.get("files") or {}).get(f"programs/{program}.parquet")
        records = ((document.get("programs") or {}).get(program) or {}).get("recipients", 0)
        path = Path(folder) / "programs" / f"{program}.parquet"
        if digest is None or not path.exists():
            raise fail(404, "err.request.not_found", f"version {number} has no file for program {program}")
        disclosure.record_file(
            conn, client.client_id, {"path": request.url.path}, number, program, records, digest
        )

    def chunks():
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/vnd.apache.parquet",
        headers={
            "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(digest)).decode(),
            "X-Content-SHA256": digest,
            "Content-Length": str(path.stat().st_size),
        },
    )
