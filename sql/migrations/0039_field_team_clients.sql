-- Field teams read their verification cases through the registry API (issue 26, item 3). A client may
-- be a region's field team: its scope is its region codes (province, regency, district or village
-- prefixes) and the cases there, not a program; it gets what a visit needs (NIK, KK, name, address,
-- the reasons) of its own regions' open cases only, and each answer goes to the disclosure log.
ALTER TABLE api.client ADD COLUMN case_regions text[] NOT NULL DEFAULT '{}';
ALTER TABLE api.client ADD CONSTRAINT client_case_regions_are_codes
    CHECK (array_to_string(case_regions, ',') ~ '^([0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10})?(,([0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10}))*$');
-- a program team has programs; a field team may have none
ALTER TABLE api.client DROP CONSTRAINT client_programs_check;
ALTER TABLE api.client ADD CONSTRAINT client_has_a_scope
    CHECK (cardinality(programs) > 0 OR cardinality(case_regions) > 0);
-- a field team's answer is a disclosure of its own kind (program 'cases')
ALTER TABLE api.disclosure DROP CONSTRAINT disclosure_kind_check;
ALTER TABLE api.disclosure ADD CONSTRAINT disclosure_kind_check CHECK (kind IN ('search', 'file', 'cases'));

GRANT USAGE ON SCHEMA cases TO dtsen_api;
GRANT SELECT ON cases.verification_case, cases.case_reason TO dtsen_api;
