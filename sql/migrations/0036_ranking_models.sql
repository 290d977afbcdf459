-- Ranking models kept in the warehouse, and a person's decision to use one (issue 25). The model a
-- round ranks with is the one adopted last; before any adoption, the configured model file
-- (DTSEN_RANKING_MODEL), registered and recorded as adopted by the system at the first candidate.
-- A fitted model comes with its card: the data it was fitted on, its cross-validated targeting errors
-- beside the current model's on the same folds, and what adopting it would change (aggregates only).
CREATE TABLE publish.ranking_model (
    model_version integer PRIMARY KEY,
    name text NOT NULL,
    sha256 text NOT NULL UNIQUE,
    document jsonb NOT NULL,
    source text NOT NULL CHECK (source IN ('file', 'fit')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE publish.ranking_model_card (
    model_version integer PRIMARY KEY REFERENCES publish.ranking_model,
    as_of_version integer REFERENCES publish.version,
    compared_with integer REFERENCES publish.ranking_model,
    card jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE publish.ranking_model_decision (
    decision_pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_version integer NOT NULL REFERENCES publish.ranking_model,
    outcome text NOT NULL CHECK (outcome IN ('ADOPTED', 'REJECTED', 'TIMED_OUT', 'REFUSED')),
    decided_by text CHECK (decided_by IS NOT NULL OR outcome = 'TIMED_OUT'),
    channel text NOT NULL CHECK (channel IN ('airflow-ui', 'cli', 'system')),
    reason text CHECK (outcome <> 'ADOPTED' OR reason IS NOT NULL),
    dag_run_id text,
    refused_because text CHECK ((outcome = 'REFUSED') = (refused_because IS NOT NULL)),
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ranking_model_decision_latest ON publish.ranking_model_decision (decided_at DESC)
    WHERE outcome = 'ADOPTED';

-- the model in use: the one adopted last
CREATE VIEW publish.adopted_model AS
SELECT m.*, d.decided_by AS adopted_by, d.decided_at AS adopted_at, d.reason AS adopted_because
FROM (SELECT * FROM publish.ranking_model_decision WHERE outcome = 'ADOPTED'
      ORDER BY decided_at DESC, decision_pk DESC LIMIT 1) d
JOIN publish.ranking_model m USING (model_version);

REVOKE UPDATE, DELETE ON publish.ranking_model_decision FROM dtsen_round;  -- a decision, once recorded, stays
REVOKE UPDATE, DELETE ON publish.ranking_model FROM dtsen_round;  -- a model, once registered, is what it was
GRANT SELECT ON publish.adopted_model TO dtsen_round;
GRANT SELECT ON publish.ranking_model, publish.ranking_model_card, publish.ranking_model_decision,
    publish.adopted_model TO dtsen_cockpit;
