"""Small hand-made landing zones for tests that need exact control over bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dtsen.ingest.register import round_reference_date

ROUND = "2026-Q2"
KELUARGA = b"operasi,no_kk,kode_wilayah,tanggal_pendataan\nUBAH,3273010101200001,3273011001,2026-05-01\n"
ANGGOTA = b"operasi,nik,no_kk\nUBAH,3273014101900001,3273010101200001\n"


def make_submission(
    root: Path,
    sub_id: str = "3273-2026Q2-01",
    *,
    folder: str = "pemda",
    data_files: dict[str, bytes] | None = None,
    folder_round: str = ROUND,
    **overrides,
) -> Path:
    """Write a pemda submission folder whose manifest matches its files, unless overridden."""
    path = root / folder_round / folder / sub_id
    path.mkdir(parents=True)
    files = data_files if data_files is not None else {"keluarga.csv": KELUARGA, "anggota.csv": ANGGOTA}
    for name, data in files.items():
        (path / name).write_bytes(data)
    manifest = {
        "source": folder,
        "submission_id": sub_id,
        "round_id": folder_round,
        "kode_wilayah": "3273" if folder == "pemda" else "",
        "submitted_at": "2026-05-14T09:30:00+07:00",
        "submitted_by": "dinsos.kotabandung",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    manifest.update(overrides)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def make_dukcapil(root: Path, snapshot_date: str, body: bytes) -> Path:
    path = root / "reference" / "dukcapil" / snapshot_date
    path.mkdir(parents=True)
    (path / "penduduk.csv").write_bytes(body)
    return path / "penduduk.csv"


# -- a small round whose expected reason codes are known (validation, feedback, bad input) --------

FAMILY_ATTRS = (
    "status_kepemilikan_rumah,luas_lantai_m2,jenis_lantai,jenis_dinding,jenis_atap,sumber_air_minum,"
    "sumber_penerangan,daya_listrik_va,bahan_bakar_memasak,fasilitas_bab,punya_kulkas,punya_ac,"
    "punya_sepeda_motor,punya_mobil,punya_emas,punya_lahan,punya_ternak"
)
KELUARGA_HEADER = f"operasi,no_kk,kode_wilayah,alamat,tanggal_pendataan,{FAMILY_ATTRS},alasan_hapus"
FAMILY_VALUES = "1,36,2,1,2,3,1,900,3,1,1,0,1,0,0,0,0"
ANGGOTA_HEADER = (
    "operasi,nik,no_kk,nama,jenis_kelamin,tanggal_lahir,hubungan_keluarga,status_perkawinan,"
    "pendidikan_tertinggi,status_sekolah,status_pekerjaan,disabilitas,penyakit_kronis,alasan_hapus"
)

KK1, KK2, KK_NOWHERE = "3273010101200001", "3273010101200002", "3273010101200099"
# (nik, sex, birth date, life status)
PEOPLE = {
    "A": ("3273014101900001", 2, "1990-01-01", "HIDUP"),
    "B": ("3273010505600002", 1, "1960-05-05", "HIDUP"),
    "C": ("3273011212120003", 1, "2012-12-12", "HIDUP"),
    "D": ("3273015003850004", 2, "1985-03-10", "MENINGGAL"),
    "E": ("3273010202700005", 1, "1970-02-02", "HIDUP"),
    "F": ("3273010303800006", 1, "1980-03-03", "HIDUP"),
    "H": ("3273010606060008", 1, "2006-06-06", "HIDUP"),
    "J": ("3273010707070009", 1, "2007-07-07", "HIDUP"),
}
NOT_IN_DUKCAPIL = ("3273010404900007", 1, "1990-04-04")


def member(op: str, nik: str, kk: str, sex: int, born: str, hub: int) -> str:
    return f"{op},{nik},{kk},Nama Orang,{sex},{born},{hub},1,3,2,1,0,0,"


def person(key: str, op: str, kk: str, hub: int) -> str:
    nik, sex, born, _ = PEOPLE[key]
    return member(op, nik, kk, sex, born, hub)


BPS_KELUARGA_HEADER = "no_kk,kode_wilayah,tanggal_survei,jenis_lantai,pengeluaran_per_kapita"


def land_bps_round(landing: Path, round_id: str, rows: list[str]) -> Path:
    """A round whose only delivery is a BPS survey of `rows` (lines under BPS_KELUARGA_HEADER)."""
    make_submission(
        landing,
        f"bps-{round_id.replace('-', '')}-test",
        folder="bps",
        folder_round=round_id,
        data_files={"keluarga.csv": "\n".join([BPS_KELUARGA_HEADER, *rows, ""]).encode()},
        submitted_at="2026-11-20T09:30:00+07:00",
        submitted_by="bps.pusat",
    )
    return landing


def version_rows(conn, table: str, version: int) -> set[tuple]:
    """publish.<table>'s rows of `version`, without the span columns: what two builds compare."""
    columns = [
        d.name
        for d in conn.execute(f"SELECT * FROM publish.{table} LIMIT 0").description  # noqa: S608
        if d.name not in ("version", "valid_from", "valid_to")
    ]
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM publish.{table} WHERE version = %s", (version,))  # noqa: S608
    return {tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in rows}  # PKH's komponen


def build_round(tmp_path, round_id: str, anggota_rows: list[str], keluarga_rows: list[str]):
    landing = tmp_path / "landing"
    dukcapil = ["nik,no_kk,nama,jenis_kelamin,tanggal_lahir,kode_wilayah,status_hidup,tanggal_meninggal"]
    for nik, sex, born, life in PEOPLE.values():
        dukcapil.append(
            f"{nik},{KK1},Nama Orang,{sex},{born},3273011001,{life},{'2026-01-05' if life == 'MENINGGAL' else ''}"
        )
    make_dukcapil(landing, round_reference_date(round_id).isoformat(), ("\n".join(dukcapil) + "\n").encode())
    make_submission(
        landing,
        "3273-test",
        folder_round=round_id,
        data_files={
            "keluarga.csv": ("\n".join([KELUARGA_HEADER, *keluarga_rows]) + "\n").encode(),
            "anggota.csv": ("\n".join([ANGGOTA_HEADER, *anggota_rows]) + "\n").encode(),
        },
    )
    return landing


class RewrittenOnReopen:
    """Rewrite a file the moment it is opened a second time (fanotify: the opener waits until the new
    bytes are in place), to prove the pipeline reads a delivered file once: the bytes it hashes are
    the bytes it keeps and stages. Needs CAP_SYS_ADMIN (root); `available()` says whether it can run.
    """

    FAN_CLASS_CONTENT, FAN_OPEN_PERM, FAN_MARK_ADD, FAN_ALLOW, AT_FDCWD = 0x04, 0x00010000, 0x1, 0x01, -100

    def __init__(self, path: Path, new_bytes: bytes):
        import ctypes

        self.path, self.new_bytes, self.opens = path, new_bytes, 0
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        self._libc.fanotify_mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]

    @classmethod
    def available(cls) -> bool:
        import ctypes
        import os

        fd = ctypes.CDLL(None, use_errno=True).fanotify_init(cls.FAN_CLASS_CONTENT, os.O_RDONLY)
        if fd < 0:
            return False
        os.close(fd)
        return True

    def __enter__(self) -> RewrittenOnReopen:
        import os
        import threading

        self._held = os.open(self.path, os.O_RDWR)  # rewrites go through this: no open event of ours
        self._fd = self._libc.fanotify_init(self.FAN_CLASS_CONTENT, os.O_RDONLY)
        if self._fd < 0 or self._libc.fanotify_mark(
            self._fd, self.FAN_MARK_ADD, self.FAN_OPEN_PERM, self.AT_FDCWD, str(self.path).encode()
        ):
            raise OSError("fanotify is not available")
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        import os
        import select
        import struct

        while not self._stop:
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            data = os.read(self._fd, 4096)
            offset = 0
            while offset < len(data):
                length, _, _, _, _, event_fd, _ = struct.unpack_from("IBBHQii", data, offset)
                self.opens += 1
                if self.opens == 2:
                    os.ftruncate(self._held, 0)
                    os.pwrite(self._held, self.new_bytes, 0)
                os.write(self._fd, struct.pack("iI", event_fd, self.FAN_ALLOW))
                os.close(event_fd)
                offset += length

    def __exit__(self, *exc) -> None:
        import os

        self._stop = True
        self._thread.join()
        os.close(self._fd)
        os.close(self._held)


# -- running a round's steps (dtsen.round), as the DAG and the command line do ----------------------

VALIDATION_STEPS = ("open_round", "stage_and_validate", "finish_validation")


def run_steps(round_id: str, *, landing_root, publish_root=None, until=None, only=None, **options) -> dict:
    """Run the round's step list (or the steps in `only`); the steps' summaries by name."""
    from dtsen.round import RoundContext, run_round

    ctx = RoundContext.create(round_id, landing_root=landing_root, publish_root=publish_root, **options)
    return run_round(ctx, until=until, only=only)


@contextmanager
def sample_first_round_in(url: str, work: Path, until: str, **settings: str) -> Iterator[None]:
    """The sample's first round run through step `until` into database `url` (raw store and published
    files under `work`); the round's environment, with the DTSEN_* `settings` given, stays set until
    the block ends."""
    import pytest

    from dtsen.paths import SAMPLE_DIR

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_DATABASE_URL", url)
        env.setenv("DTSEN_RAW_ROOT", str(work / "raw"))
        for name, value in settings.items():
            env.setenv(name, value)
        run_steps("2026-Q1", landing_root=SAMPLE_DIR / "landing", publish_root=work / "publish", until=until)
        yield


def validate(round_id: str, *, landing_root, publish_root, threshold: float | None = None):
    """Open, stage and validate a round, then write the feedback that is final (nothing is merged);
    the round's report read back from the warehouse."""
    from dtsen.report import round_report
    from dtsen.warehouse import engine

    run_steps(
        round_id,
        landing_root=landing_root,
        publish_root=publish_root,
        only=(*VALIDATION_STEPS, "feedback"),
        quality_gate_threshold=threshold,
    )
    with engine.connect() as conn:
        return round_report(conn, round_id, Path(publish_root))


@dataclass
class Staged:
    """A round opened, staged and (unless asked not to) validated through its steps."""

    round_seq: int
    opened: dict  # the open_round step's summary
    submissions: list[dict]  # the stage_and_validate step's summaries, one per submission


def stage(round_id: str, landing_root, *, validate: bool = True, threshold: float | None = 1.0) -> Staged:
    steps = VALIDATION_STEPS if validate else VALIDATION_STEPS[:2]
    done = run_steps(round_id, landing_root=landing_root, only=steps, quality_gate_threshold=threshold)
    return Staged(done["open_round"]["round_seq"], done["open_round"], done["stage_and_validate"])


def merge(conn, round_seq: int):
    """Merge in a transaction of its own (committed: later steps read through their own connections)."""
    from dtsen.merge import merge_round

    conn.commit()
    with conn.transaction():
        return merge_round(conn, round_seq)


# -- the update DAG through the real Airflow runtime, beside a real api-server ---------------------

RUN_DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
run = bag.dags[sys.argv[3]].test(run_conf=json.loads(sys.argv[2]))
tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if ti.map_index < 0}
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tasks}))
"""


def audited_sample_candidate(conn, publish_root: Path) -> int:
    """The sample's round 2026-Q1 merged, its candidate built and audited (AUDITED), not yet
    published; its version."""
    from dtsen.paths import SAMPLE_DIR
    from dtsen.programs import load_programs
    from dtsen.publish.audit import audit_version
    from dtsen.publish.candidate import build_candidate
    from dtsen.rank.model import load_model

    run_steps("2026-Q1", landing_root=SAMPLE_DIR / "landing", publish_root=publish_root, until="merge")
    with conn.transaction():
        built = build_candidate(conn, "2026-Q1", load_model(), load_programs())
        assert audit_version(conn, built.version).status == "AUDITED"
    return built.version


def programs_with_pbi_jk_desil_max(path: Path, desil_max: int) -> Path:
    """The bundled program rules with PBI JK cut to desil 1..`desil_max` (a candidate that drifts)."""
    from dtsen.paths import PROJECT_ROOT

    programs = json.loads((PROJECT_ROOT / "config" / "programs.json").read_text())
    next(p for p in programs["programs"] if p["id"] == "pbi_jk")["desil_max"] = desil_max
    path.write_text(json.dumps(programs))
    return path


def start_update_round(env: dict, run_conf: dict, log: Path, dag_id: str = "dtsen_update_round"):
    """`<dag_id>.test(run_conf)` (the update DAG unless told) in a process of its own (sharing `env`'s
    Airflow metadata with an api-server); its output goes to `log` (Airflow's task logs would fill a pipe)."""
    import subprocess
    import sys

    from dtsen.paths import PROJECT_ROOT

    return subprocess.Popen(
        [sys.executable, "-c", RUN_DAG_TEST, str(PROJECT_ROOT / "dags"), json.dumps(run_conf), dag_id],
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
    )


def update_round_result(proc, log: Path, timeout: float = 900) -> dict:
    """The run's state, run id and task states once the process started by start_update_round ends."""
    proc.wait(timeout=timeout)
    lines = log.read_text().splitlines()
    found = [line for line in lines if line.startswith("RESULT ")]
    assert found, f"the run printed no result:\n{log.read_text()[-4000:]}"
    return json.loads(found[0][7:])


def airflow_token(base: str, user: str, password: str) -> str:
    """A bearer token of Airflow's SimpleAuthManager for `user`."""
    import httpx

    answer = httpx.post(f"{base}/auth/token", json={"username": user, "password": password})
    answer.raise_for_status()
    return answer.json()["access_token"]


def waiting_hitl_detail(
    base: str, token: str, proc, log: Path, timeout: float = 600, dag_id: str = "dtsen_update_round"
) -> dict:
    """A DAG's (the update DAG's unless told) human-in-the-loop request that waits for an answer, once
    the run asks it."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    seen_from = None  # the log's length when the request first showed
    while True:
        assert proc.poll() is None, (
            f"the run ended without waiting for a decision:\n{log.read_text()[-4000:]}"
        )
        assert time.monotonic() < deadline, "the approval task never asked"
        found = httpx.get(
            f"{base}/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails",
            headers={"Authorization": f"Bearer {token}"},
        )
        waiting = [d for d in found.json().get("hitl_details", []) if not d.get("response_received")]
        if waiting:
            # answered before dag.test has parked the task, the answer is overwritten by the parking
            # and the run waits for ever: answer once its loop says it waits for this task
            text = log.read_text()
            seen_from = len(text) if seen_from is None else seen_from
            task = waiting[0]["task_instance"]["task_id"]
            if f"Waiting for Human-in-the-loop input for tasks: ['{task}']" in text[seen_from:]:
                return waiting[0]
        time.sleep(1)


def answer_hitl(
    base: str,
    token: str,
    run_id: str,
    body: dict,
    task_id: str = "approval",
    dag_id: str = "dtsen_update_round",
):
    """PATCH a task's human-in-the-loop detail as the token's user (Airflow's public API)."""
    import httpx

    return httpx.patch(
        f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    )


@contextmanager
def airflow_beside_a_warehouse(
    work: Path, warehouse: str, users: dict[str, tuple[str, str]], extra_env: dict[str, str]
) -> Iterator[tuple[str, dict, object]]:
    """An api-server (SimpleAuthManager with `users`: name -> (role, password), SQLite metadata under
    `work`) over a warehouse where the sample's round 2026-Q1 ran through the step list, with a real
    SMTP sink; yields (base URL, the environment of every Airflow process, the sink)."""
    import os
    import shutil
    import subprocess
    import sys

    import psycopg
    import pytest

    from dtsen.paths import SAMPLE_DIR
    from dtsen.warehouse import engine
    from dtsen_dev.browser import wait_http
    from dtsen_dev.local_airflow import MailSink, airflow_env, free_port, migrate_airflow_db

    home = work / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({name: pw for name, (_, pw) in users.items()}))
    shutil.copytree(SAMPLE_DIR / "landing", work / "landing")
    base = f"http://127.0.0.1:{free_port()}"
    with MailSink(free_port()) as mail:
        env = (
            {k: v for k, v in os.environ.items() if k != "DTSEN_APPROVERS"}
            | airflow_env(mail.port, home=home)
            | {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{n}:{r}" for n, (r, _) in users.items()
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__API__BASE_URL": base,
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "DTSEN_DATABASE_URL": warehouse,
                "DTSEN_LANDING_ROOT": str(work / "landing"),
                "DTSEN_PUBLISH_ROOT": str(work / "publish"),
                "DTSEN_RAW_ROOT": str(work / "raw"),
                "DTSEN_OUTBOX": str(work / "outbox"),
            }
            | extra_env
        )
        migrate_airflow_db(env)
        with pytest.MonkeyPatch.context() as patch:
            for key in ("DTSEN_DATABASE_URL", "DTSEN_LANDING_ROOT", "DTSEN_PUBLISH_ROOT", "DTSEN_RAW_ROOT"):
                patch.setenv(key, env[key])
            from dtsen.round import RoundContext, run_round
            from dtsen.warehouse.migrate import migrate

            with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
                migrate(conn)
            # with the bundled rules (not extra_env's): the version later rounds drift from
            run_round(RoundContext.create("2026-Q1"))
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
        server = subprocess.Popen(
            [*airflow, "api-server", "--port", base.rsplit(":", 1)[1]],
            env=env,
            stdout=open(work / "api-server.log", "w"),  # noqa: SIM115 (closed with the process)
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"{base}/api/v2/version", 120)
            yield base, env, mail
        finally:
            server.terminate()
            server.wait(timeout=30)


# -- the registry API: DCI requests, a published version to serve --------------------------------

DCI_NOW = "2026-12-03T10:00:00+07:00"
# the registry API's own signing key in the tests (DTSEN_API_SIGNING_KEY, set for the whole session by
# conftest.py): the base64 of a fixed 32-byte Ed25519 seed, so every API the tests start has one
API_SIGNING_KEY = "ZHRzZW4tdGVzdHMtcmVnaXN0cnktc2lnbmluZy1rZXk="


def dci_envelope(*items: dict, action: str = "search", transaction: str = "txn-1") -> dict:
    """A DCI request envelope of `action` carrying `items` (its `<action>_request` list)."""
    return {
        "signature": "",
        "header": {
            "version": "1.0.0",
            "message_id": "msg-1",
            "message_ts": DCI_NOW,
            "action": action,
            "sender_id": "test-client",
            "total_count": len(items),
        },
        "message": {"transaction_id": transaction, f"{action}_request": list(items)},
    }


def dci_predicate(*expressions: tuple[str, str, object], pagination: object = None) -> dict:
    """Search criteria of a predicate query: each (attribute, operator, value) one expression."""
    return {
        "query_type": "predicate",
        "query": [
            {"seq_num": i + 1, "expression1": {"attribute_name": n, "operator": o, "attribute_value": v}}
            for i, (n, o, v) in enumerate(expressions)
        ],
        "pagination": {"page_size": 10, "page_number": 1} if pagination is None else pagination,
    }


def dci_item(criteria: dict, reference: str = "ref-1") -> dict:
    return {"reference_id": reference, "timestamp": DCI_NOW, "search_criteria": criteria}


def api_bearer(http, client_id: str, secret: str) -> dict:
    """The Authorization header of a bearer token `client_id` got from the API (`http`: a TestClient)."""
    answer = http.post(
        "/oauth2/client/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def published_sample(conn, publish_root: Path) -> int:
    """The sample's round 2026-Q1 published (its version), for the registry API to serve."""
    from dtsen.publish.version import publish_version

    version = audited_sample_candidate(conn, publish_root)
    with conn.transaction():
        publish_version(conn, version, publish_root)
    return version


@contextmanager
def running_registry_api(
    env: dict, log: Path | None = None, port: int | None = None
) -> Iterator[tuple[str, object]]:
    """`dtsen api` in a process of its own on 127.0.0.1 (a free port unless given), with `env`, its output
    in `log` (or discarded); yields (its base URL, the process) once it answers, and stops it after."""
    import subprocess
    import sys

    from dtsen_dev.browser import wait_http
    from dtsen_dev.local_airflow import free_port

    port = port or free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "dtsen", "api", "--port", str(port)],
        env={"DTSEN_API_SIGNING_KEY": API_SIGNING_KEY} | env,  # the API refuses to start without a key
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/registry/versions", 60)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=30)
        if log:
            out.close()


def start_webhook_receiver() -> tuple[object, str, list[dict]]:
    """A real HTTP server on loopback that answers 200 to every POST and keeps each call's body,
    timestamp and signature: (the server, its URL, the calls). Stop it with `server.shutdown()`."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dtsen.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER

    calls: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(
                {
                    "body": body,
                    "timestamp": self.headers[TIMESTAMP_HEADER],
                    "signature": self.headers[SIGNATURE_HEADER],
                }
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", calls


def objections_against_truth(conn, truth_round: Path, round_id: str) -> list[dict]:
    """The generator's accepted objections and proposals of a round (truth/<round>/aduan.csv) that did
    not join exactly one case of the family the truth names (by the channel's pelapor_ref); and any
    accepted row the truth does not know. Empty: every one is where it should be."""
    import csv

    with (truth_round / "aduan.csv").open(encoding="utf-8", newline="") as fh:
        truth = {t["pelapor_ref"]: t for t in csv.DictReader(fh)}
    linked = {
        ref: (str(kk), str(case_kk) if case_kk else None)
        for ref, kk, case_kk in conn.execute(
            "SELECT a.pelapor_ref, a.no_kk, c.no_kk FROM cases.aduan a "
            "JOIN ingest.submission s USING (submission_pk) JOIN ingest.round r ON r.round_seq = a.round_seq "
            "LEFT JOIN cases.verification_case c USING (id_kasus) "
            "WHERE r.round_id = %s AND s.source = 'aduan' AND s.submission_id LIKE 'cekbansos-%%'",
            (round_id,),
        )
    }
    conn.rollback()
    wrong = [t for ref, t in truth.items() if linked.get(ref) != (t["no_kk"], t["no_kk"])]
    return wrong + [{"unknown_to_truth": ref} for ref in set(linked) - set(truth)]


def visits_against_truth(conn, truth_round: Path, round_id: str) -> list[dict]:
    """The generator's visits of objected families in a round (truth/<round>/kunjungan_aduan.csv) whose
    family's objection case did not close in that round with the outcome the truth implies."""
    import csv

    with (truth_round / "kunjungan_aduan.csv").open(encoding="utf-8", newline="") as fh:
        visits = list(csv.DictReader(fh))
    wrong = []
    for visit in visits:
        found = conn.execute(
            "SELECT c.state, c.outcome, r.round_id FROM cases.verification_case c "
            "JOIN ingest.round r ON r.round_seq = c.closed_round "
            "WHERE c.no_kk = %s AND c.case_type <> 'VERIFIKASI' ORDER BY c.id_kasus DESC LIMIT 1",
            (int(visit["no_kk"]),),
        ).fetchone()
        if found != ("RESOLVED", visit["expected_outcome"], round_id):
            wrong.append(visit | {"found": found})
    conn.rollback()
    return wrong


def rounds_against_truth(conn, world: Path, publish_root: Path, rounds) -> dict:
    """Each round of a generated world (its landing/ and truth/) through the round's step list, scored
    as it ends: {round_id: (the steps' summaries, rejections against the truth, registry against the
    expected registry)}."""
    from dtsen.contract import ROW_LEVEL_CODES
    from dtsen_dev.evaluate import score_registry, score_rejections

    scores = {}
    for round_id in rounds:
        steps = run_steps(round_id, landing_root=world / "landing", publish_root=publish_root)
        conn.commit()
        scores[round_id] = (
            steps,
            score_rejections(conn, world / "truth" / round_id, round_id, set(ROW_LEVEL_CODES)),
            score_registry(conn, world / "truth" / round_id),
        )
        conn.commit()
    return scores
