-- An answer on a blocked candidate that is not a valid approval (an Approve without a reason, or from
-- a user outside DTSEN_APPROVERS) is kept as REFUSED: the candidate stays BLOCKED. Why it was refused
-- is the pipeline's own words, kept apart from `reason` (only ever what the person wrote).
ALTER TABLE publish.approval_decision DROP CONSTRAINT approval_decision_outcome_check;
ALTER TABLE publish.approval_decision
    ADD CONSTRAINT approval_decision_outcome_check
        CHECK (outcome IN ('APPROVED', 'REJECTED', 'TIMED_OUT', 'REFUSED')),
    ADD COLUMN refused_because text,
    ADD CONSTRAINT approval_decision_refusal_explained
        CHECK ((outcome = 'REFUSED') = (refused_because IS NOT NULL));
