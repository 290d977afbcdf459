-- A Kemensos field result may name the verification case it answers (issue 26, item 4): an optional
-- column id_kasus of groundcheck.csv (an extension of the contract, docs/contract-extensions.md),
-- staged as received like every column.
ALTER TABLE staging.kemensos_groundcheck ADD COLUMN id_kasus text;
