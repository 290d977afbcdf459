-- Which fields of the records went out (issue 24, item 1): a search answer's fields are its client's
-- scope, a program file's are the columns it was served with (the scope's columns of the file, never
-- more). Disclosures recorded before this migration said nothing of their fields and stay as they
-- were (NULL: the log is append-only); every disclosure from now on must say (NOT VALID: checked for
-- new rows only). The API role's INSERT on the table covers the new column.
ALTER TABLE api.disclosure ADD COLUMN fields text[];
ALTER TABLE api.disclosure ADD CONSTRAINT disclosure_says_its_fields
    CHECK (fields IS NOT NULL AND cardinality(fields) > 0) NOT VALID;
