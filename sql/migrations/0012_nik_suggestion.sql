-- NIK-repair suggestions: for a row rejected NIK_NOT_IN_DUKCAPIL or NIK_MISMATCH, the Dukcapil
-- person it most likely means. Advice for the region only: nothing in the registry changes. The
-- full NIK stays in the warehouse (for audit and measurement); feedback shows it masked.
CREATE TABLE quality.nik_suggestion (
    round_seq        smallint NOT NULL,
    submission_pk    bigint NOT NULL,
    file_name        text NOT NULL,
    line_no          integer NOT NULL,
    suggested_nik    bigint NOT NULL,
    name_similarity  real NOT NULL,     -- 0..1 after spelling normalisation
    score            real NOT NULL,
    margin           real NOT NULL,     -- score lead over the runner-up (1 when it had none)
    candidates       integer NOT NULL,  -- candidates the blocking found for the row
    digits_differing text NOT NULL,     -- 1-based positions where the submitted NIK differs, e.g. '7,8'
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_seq, submission_pk, file_name, line_no)
);
