-- Verification cases (issue 26): one family to visit, opened by the pipeline's flags (implausible
-- recipients, split surges, records gone stale) and by households' objections and proposals, worked
-- by a region's field team, closed by a Kemensos field result or by its due date passing.
-- A family has at most one case not yet closed: every origin that flags it adds a reason to that case.
-- Every change of state is kept with who, when and why (cases.case_transition, append only).
CREATE SCHEMA cases;

CREATE TABLE cases.verification_case (
    id_kasus       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the contract's id_kasus
    case_type      text NOT NULL CHECK (case_type IN ('VERIFIKASI', 'SANGGAH', 'USUL')),
    no_kk          bigint NOT NULL,
    kode_wilayah   text NOT NULL,        -- the family's village when the case opened: whose team visits
    priority       smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),  -- its most urgent reason's
    due_date       date NOT NULL,        -- its earliest reason's
    state          text NOT NULL DEFAULT 'OPEN'
                   CHECK (state IN ('OPEN', 'ASSIGNED', 'VISITED', 'RESOLVED', 'EXPIRED')),
    outcome        text CHECK (outcome IN ('CONFIRMED', 'CORRECTED', 'NOT_FOUND', 'MOVED', 'DECEASED', 'WITHDRAWN')),
    assigned_to    text,                 -- the field team (a region's), once ASSIGNED
    opened_round   smallint NOT NULL REFERENCES ingest.round,
    closed_round   smallint REFERENCES ingest.round,
    opened_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'RESOLVED') = (outcome IS NOT NULL)),
    CHECK ((state IN ('RESOLVED', 'EXPIRED')) = (closed_round IS NOT NULL)),
    CHECK (state <> 'ASSIGNED' OR assigned_to IS NOT NULL)
);
CREATE UNIQUE INDEX verification_case_one_live ON cases.verification_case (no_kk)
    WHERE state IN ('OPEN', 'ASSIGNED', 'VISITED');
CREATE INDEX verification_case_region ON cases.verification_case (kode_wilayah, state);
CREATE INDEX verification_case_due ON cases.verification_case (due_date) WHERE state IN ('OPEN', 'ASSIGNED');

-- Why a case is there: one row per origin and detail (the implausible rule, the flag's scope and
-- metric, how many rounds stale, the objection's reason code), with the round that raised it first and
-- how many times it was raised (identical objections counted, not repeated).
CREATE TABLE cases.case_reason (
    id_kasus    bigint NOT NULL REFERENCES cases.verification_case,
    origin      text NOT NULL CHECK (origin IN ('implausible', 'split_surge', 'stale', 'sanggah', 'usul')),
    detail      text NOT NULL,
    round_seq   smallint NOT NULL REFERENCES ingest.round,
    raised      integer NOT NULL DEFAULT 1 CHECK (raised >= 1),
    PRIMARY KEY (id_kasus, origin, detail)
);
CREATE INDEX case_reason_round ON cases.case_reason (round_seq, origin);

CREATE TABLE cases.case_transition (
    transition_pk  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id_kasus       bigint NOT NULL REFERENCES cases.verification_case,
    from_state     text,                 -- NULL: the case opened
    to_state       text NOT NULL,
    round_seq      smallint REFERENCES ingest.round,  -- the round that made it; NULL: a person, between rounds
    decided_by     text NOT NULL,        -- 'system' or who (a CLI user, an Airflow user)
    why            text NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX case_transition_case ON cases.case_transition (id_kasus, transition_pk);

-- What each round's cases step did (counts): a rerun of the step finds it and does nothing again.
CREATE TABLE cases.round_summary (
    round_seq  smallint PRIMARY KEY REFERENCES ingest.round,
    summary    jsonb NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

-- The round opens, moves and closes cases; a transition, once recorded, stays.
GRANT USAGE ON SCHEMA cases TO dtsen_round;
GRANT SELECT, INSERT, UPDATE ON cases.verification_case, cases.case_reason TO dtsen_round;
GRANT SELECT, INSERT ON cases.case_transition, cases.round_summary TO dtsen_round;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA cases TO dtsen_round;
-- The cockpit reads them (its pages mask the keys).
GRANT USAGE ON SCHEMA cases TO dtsen_cockpit;
GRANT SELECT ON cases.verification_case, cases.case_reason, cases.case_transition, cases.round_summary
    TO dtsen_cockpit;
