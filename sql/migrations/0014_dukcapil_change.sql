-- The rows of a Dukcapil snapshot that are new or changed against the snapshot before it, computed
-- once when the snapshot is loaded (a merge join of two primary keys, while the snapshot is being
-- read anyway). A merge whose previous round used that base snapshot reads only these rows, so its
-- Dukcapil work grows with the civil registry's changes, not with its 289M rows.
ALTER TABLE ingest.dukcapil_snapshot ADD COLUMN diff_base_pk integer REFERENCES ingest.dukcapil_snapshot;

CREATE TABLE ref.dukcapil_change (
    snapshot_pk       integer NOT NULL REFERENCES ingest.dukcapil_snapshot,
    nik               bigint NOT NULL,
    nama              text NOT NULL,
    jenis_kelamin     smallint NOT NULL,
    tanggal_lahir     date NOT NULL,
    status_hidup      text NOT NULL,
    tanggal_meninggal date,
    PRIMARY KEY (snapshot_pk, nik)
);
