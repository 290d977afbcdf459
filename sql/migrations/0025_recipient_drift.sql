-- The drift of each audited version against the previous published one, per regency and program,
-- kept when the audit computes it: the audit's checks and flagged rows read it, and the cockpit shows
-- a version's drift without recounting the spans opened and closed (seconds at 10M persons).
CREATE TABLE publish.recipient_drift (
    version           integer NOT NULL REFERENCES publish.version,
    previous_version  integer NOT NULL,
    kode_kabupaten    text NOT NULL,
    program           text NOT NULL,
    sebelumnya        bigint NOT NULL,
    ditambah          bigint NOT NULL,
    dikeluarkan       bigint NOT NULL,
    added_share       double precision NOT NULL,
    removed_share     double precision NOT NULL,
    PRIMARY KEY (version, program, kode_kabupaten)
);
