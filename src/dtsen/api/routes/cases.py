"""A region's field team reads its verification cases (issue 26, item 3): the open cases (OPEN or
ASSIGNED) of its region codes, each with what a visit needs (the family's KK and address, every
member's NIK, name, sex, birth date and relationship, the reasons and what to check), from the current
published version. Only a client whose scope is those regions' cases (api.client.case_regions) may
ask; a case outside them is not found, as one that does not exist. Every answer that carries persons
is written to the disclosure log (kind 'cases') before it leaves."""

from fastapi import APIRouter, Request

from dtsen.api import disclosure
from dtsen.api.clients import Client
from dtsen.api.deps import AppState, Caller, fail, version_of, whole_number
from dtsen.sqlfiles import statements

router = APIRouter()

# the personal fields a work list carries (the disclosure log names them)
DISCLOSED = (
    "nik",
    "no_kk",
    "kode_wilayah",
    "alamat",
    "nama",
    "jenis_kelamin",
    "tanggal_lahir",
    "hubungan_keluarga",
)

# what a visit checks, per origin (Indonesian: the field officers read it)
WHAT_TO_CHECK = {
    "implausible": "Periksa kondisi rumah dan aset keluarga: ciri-cirinya tidak lazim untuk desilnya (aturan: {detail}).",
    "split_surge": "Periksa apakah keluarga ini benar-benar tinggal terpisah dari KK asalnya (lonjakan pemisahan KK, {detail}).",
    "stale": "Perbarui dan verifikasi data keluarga: tidak diperbarui atau diverifikasi sejak lama ({detail}).",
    "sanggah": "Sanggahan warga: periksa kelayakan keluarga ini sebagai penerima ({detail}).",
    "usul": "Usulan warga: periksa keluarga ini untuk didaftarkan atau diperingkat ulang ({detail}).",
}


def _field_team(client: Client) -> tuple[str, ...]:
    if not client.case_regions:
        raise fail(403, "err.request.forbidden", "this client's scope has no verification cases")
    return client.case_regions


def _work_list(app, client: Client, request: Request, id_kasus: int | None, after: int, size: int) -> dict:
    sql = statements("api/cases.sql")
    with app.pool.connection() as conn:
        version = version_of(conn, None)
        params = {"regions": list(_field_team(client)), "version": version, "after": after, "size": size}
        cases = conn.execute(sql["cases"], params | {"id_kasus": id_kasus}).fetchall()
        families = [row[2] for row in cases]
        homes = {r[0]: r for r in conn.execute(sql["families"], params | {"families": families})}
        members: dict[int, list] = {}
        for no_kk, nik, nama, sex, born, relation in conn.execute(
            sql["members"], params | {"families": families}
        ):
            members.setdefault(no_kk, []).append(
                {
                    "nik": f"{nik:016d}",
                    "nama": nama,
                    "jenis_kelamin": sex,
                    "tanggal_lahir": born.isoformat() if born else None,
                    "hubungan_keluarga": relation,
                }
            )
        answer = []
        for id_, kind, no_kk, village, priority, due, state, assigned, reasons in cases:
            home = homes.get(no_kk)
            answer.append(
                {
                    "id_kasus": id_,
                    "jenis": kind,
                    "prioritas": priority,
                    "batas_waktu": due.isoformat(),
                    "status": state,
                    "tim": assigned,
                    "no_kk": f"{no_kk:016d}",
                    "kode_wilayah": village,
                    # False: a proposed family not registered yet (usul), known by its KK and village only
                    "terdaftar": home is not None,
                    "alamat": home[1] if home else None,
                    "anggota": members.get(no_kk, []),
                    "alasan": reasons or [],
                    "yang_diperiksa": [
                        WHAT_TO_CHECK.get(r["origin"], "{detail}").replace("{detail}", r["detail"])
                        for r in reasons or []
                    ],
                }
            )
        niks = [m["nik"] for c in answer for m in c["anggota"]]
        if answer:  # recorded before any of it leaves
            disclosure.record_cases(
                conn,
                client.client_id,
                {"path": request.url.path, "query": str(request.url.query)},
                version,
                niks,
                app.key,
                DISCLOSED,
            )
    return {"version": version, "cases": answer}


@router.get("/registry/cases")
def work_list(request: Request, client: Caller, app: AppState, after: str = "0", size: str | None = None):
    """The field team's open cases, by id_kasus: `after` the last id of the previous page, `size` at most
    DTSEN_API_MAX_PAGE_SIZE; `next_after` is the id to ask after next (None: the last page)."""
    _field_team(client)
    start = whole_number(after)
    limit = whole_number(size) if size is not None else app.cfg.api_max_page_size
    if start is None or limit is None or not 1 <= limit <= app.cfg.api_max_page_size:
        raise fail(400, "err.request.bad", f"after is a case number and size 1-{app.cfg.api_max_page_size}")
    answer = _work_list(app, client, request, None, start, limit)
    answer["next_after"] = answer["cases"][-1]["id_kasus"] if len(answer["cases"]) == limit else None
    return answer


@router.get("/registry/cases/{id_kasus}")
def one_case(id_kasus: str, request: Request, client: Caller, app: AppState):
    """One open case of the field team's regions; 404 for any other (unknown, closed or elsewhere)."""
    _field_team(client)
    number = whole_number(id_kasus)
    found = _work_list(app, client, request, number, 0, 1)["cases"] if number is not None else []
    if not found:
        raise fail(404, "err.request.not_found", "no open case with this number in this client's regions")
    return found[0]
