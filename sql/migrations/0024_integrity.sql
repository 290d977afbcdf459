-- Registry integrity (issue 15): PKH's family components on each recipient row.
-- The components a PKH recipient family has (dtsen.programs.Component), in config order; NULL for
-- programs without components.
ALTER TABLE publish.recipient_span ADD COLUMN komponen text[];
CREATE OR REPLACE VIEW publish.recipient AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.recipient_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;

-- Split and surge detection per round (dtsen.integrity.splits, sql/integrity/splits.sql).
CREATE TABLE quality.integrity_round (
    round_seq   smallint PRIMARY KEY REFERENCES ingest.round,
    scored      boolean NOT NULL,     -- false on a first load: every family is new
    why         text,                 -- why not scored (operators, English)
    thresholds  jsonb NOT NULL,       -- the splits section of config/integrity.json used
    counts      jsonb NOT NULL,       -- villages and accounts scored and flagged, families involved
    checked_at  timestamptz NOT NULL DEFAULT now()
);
-- Every family a round created, once: what the village and account statistics are counted from.
CREATE TABLE quality.integrity_family (
    round_seq     smallint NOT NULL REFERENCES ingest.round,
    no_kk         bigint NOT NULL,
    kode_wilayah  text NOT NULL,
    submitted_by  text NOT NULL,      -- the manifest's account ('' when unknown)
    split         boolean NOT NULL,   -- a member left an existing family for it this round
    members       integer NOT NULL,   -- open members after the merge
    PRIMARY KEY (round_seq, no_kk)
);
CREATE INDEX integrity_family_village ON quality.integrity_family (round_seq, kode_wilayah);
-- Per round and village: the counts its history and its neighbours are compared with.
CREATE TABLE quality.integrity_village (
    round_seq       smallint NOT NULL REFERENCES ingest.round,
    kode_wilayah    text NOT NULL,
    new_families    integer NOT NULL,
    split_families  integer NOT NULL,
    small_families  integer NOT NULL,
    PRIMARY KEY (round_seq, kode_wilayah)
);
CREATE INDEX integrity_village_history ON quality.integrity_village (kode_wilayah, round_seq);
-- Per round and submitting account: the same counts, and the keluarga rows it sent (the share's base).
CREATE TABLE quality.integrity_account (
    round_seq       smallint NOT NULL REFERENCES ingest.round,
    submitted_by    text NOT NULL,
    kode_kabupaten  text NOT NULL,    -- the regency its submissions answer for (the first, if several)
    keluarga_rows   bigint NOT NULL,
    split_families  integer NOT NULL,
    small_families  integer NOT NULL,
    PRIMARY KEY (round_seq, submitted_by)
);
-- The flags: a village (DESA) or an account (AKUN) whose metric (split or small) passed the
-- thresholds against its peers and its own history. The families involved are its rows in
-- integrity_family with that metric.
CREATE TABLE quality.integrity_flag (
    round_seq       smallint NOT NULL REFERENCES ingest.round,
    scope           text NOT NULL CHECK (scope IN ('DESA', 'AKUN')),
    key             text NOT NULL,    -- village code or account
    kode_kabupaten  text NOT NULL,
    metric          text NOT NULL CHECK (metric IN ('split', 'small')),
    observed        double precision NOT NULL,  -- families (DESA) or share of keluarga rows (AKUN)
    families        integer NOT NULL,
    peer_median     double precision NOT NULL,
    peer_scale      double precision NOT NULL,
    z_peer          double precision NOT NULL,
    history_rounds  integer NOT NULL,
    history_median  double precision,
    z_history       double precision,
    PRIMARY KEY (round_seq, scope, key, metric)
);

-- Implausible recipients per version (config/integrity.json "implausible"), kept as spans like the
-- recipients: a family's row per rule, valid from the version it first met the rule.
CREATE TABLE publish.implausible_span (
    rule          text NOT NULL,
    no_kk         bigint NOT NULL,
    kode_wilayah  text NOT NULL,
    desil         smallint NOT NULL,
    valid_from    integer NOT NULL,
    valid_to      integer,
    PRIMARY KEY (rule, no_kk, valid_from)
);
CREATE UNIQUE INDEX implausible_span_current ON publish.implausible_span (rule, no_kk) WHERE valid_to IS NULL;
CREATE INDEX implausible_span_current_family ON publish.implausible_span (no_kk) WHERE valid_to IS NULL;
CREATE INDEX implausible_span_opened ON publish.implausible_span (valid_from);
CREATE INDEX implausible_span_closed ON publish.implausible_span (valid_to) WHERE valid_to IS NOT NULL;
CREATE VIEW publish.implausible AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.implausible_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;
CREATE TABLE publish.implausible_count (
    version         integer NOT NULL REFERENCES publish.version,
    rule            text NOT NULL,
    kode_kabupaten  text NOT NULL,
    families        bigint NOT NULL,
    PRIMARY KEY (version, rule, kode_kabupaten)
);
