-- Registry integrity (issue 15): PKH's family components on each recipient row.
-- The components a PKH recipient family has (dtsen.programs.Component), in config order; NULL for
-- programs without components.
ALTER TABLE publish.recipient_span ADD COLUMN komponen text[];
CREATE OR REPLACE VIEW publish.recipient AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.recipient_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;
