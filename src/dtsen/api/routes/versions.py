"""Published versions: the list, a version's manifest as a client sees it (its programs' files only),
and a program's Parquet file with the columns of the caller's field scope only, streamed with its
checksum (a disclosure, logged with its fields)."""

import base64
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dtsen.api import disclosure, files
from dtsen.api.deps import AppState, Caller, fail, program_of, version_of

router = APIRouter()


@router.get("/registry/versions")
def versions(client: Caller, app: AppState):
    with app.pool.connection() as conn:
        rows = conn.execute(
            "SELECT version, published_at FROM publish.version WHERE status IN ('PUBLISHED', 'SUPERSEDED') ORDER BY version"
        ).fetchall()
    return [{"version": v, "published_at": p.isoformat(timespec="seconds") if p else None} for v, p in rows]


def _published(app, number: int) -> tuple[dict, Path]:
    with app.pool.connection() as conn:
        document, folder = conn.execute(
            "SELECT manifest, path FROM publish.version WHERE version = %s", (number,)
        ).fetchone()
    return document, Path(folder)


def _served(document: dict, folder: Path, number: int, program: str, fields: tuple[str, ...]):
    """The program's file as this scope gets it (files.Served); None if the version has no such file,
    False if the scope gives none of its columns."""
    digest = (document.get("files") or {}).get(f"programs/{program}.parquet")
    path = folder / "programs" / f"{program}.parquet"
    if digest is None or not path.exists():
        return None
    return files.served_file(path, digest, fields, f"{number}-{program}") or False


@router.get("/registry/versions/{version}/manifest")
def manifest(version: int, client: Caller, app: AppState):
    """The client's view of the manifest: the version, the ranking model's version, and each of its
    programs' file as this client gets it (columns and checksum). The full manifest's integrity
    section, audit (the approver's username) and whole-registry counts are the ministry's, not a
    program team's."""
    with app.pool.connection() as conn:
        number = version_of(conn, version)
    document, folder = _published(app, number)
    model = document.get("ranking_model") or {}
    programs = {}
    for program in client.programs:
        counts = (document.get("programs") or {}).get(program)
        served = _served(document, folder, number, program, client.fields)
        if counts is None or served is None:
            continue
        programs[program] = {"recipients": counts.get("recipients")} | (
            {
                "file": f"/registry/versions/{number}/programs/{program}.parquet",
                "sha256": served.sha256,
                "columns": list(served.columns),
            }
            if served
            else {"file": None}  # the scope gives none of the file's columns
        )
    return {
        "version": number,
        "published_at": document.get("published_at"),
        "ranking_model": {k: model.get(k) for k in ("name", "version", "programs_version")},
        "programs": programs,
    }


@router.get("/registry/versions/{version}/programs/{name}")
def program_file(version: int, name: str, request: Request, client: Caller, app: AppState):
    program = program_of(app, client, name.removesuffix(".parquet"))
    with app.pool.connection() as conn:
        number = version_of(conn, version)
    document, folder = _published(app, number)
    served = _served(document, folder, number, program, client.fields)
    if served is None:
        raise fail(404, "err.request.not_found", f"version {number} has no file for program {program}")
    if served is False:
        raise fail(
            403,
            "err.request.forbidden",
            f"this client's fields include no column of program {program}'s file",
        )
    records = ((document.get("programs") or {}).get(program) or {}).get("recipients", 0)
    handle = open(served.path, "rb")  # noqa: SIM115 (closed by the stream)
    try:
        with app.pool.connection() as conn:  # recorded before any byte leaves
            disclosure.record_file(
                conn,
                client.client_id,
                {"path": request.url.path},
                number,
                program,
                records,
                served.sha256,
                served.columns,
            )
    except BaseException:
        handle.close()
        raise

    def chunks():
        with handle:
            while block := handle.read(1 << 20):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/vnd.apache.parquet",
        headers={
            "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(served.sha256)).decode(),
            "X-Content-SHA256": served.sha256,
            "Content-Length": str(served.path.stat().st_size),
        },
    )
