-- Issue 14: contacts alerted before follow-up lists existed get their record (status 'new', version 0,
-- so it never undoes a change). New alerts get theirs from the dispatcher.
INSERT INTO follow_ups (ward_code, case_id, person_id, generation, status, note, created_at, updated_at, updated_by, new_case_id, version)
SELECT ward_code, case_id, person_id, generation, 'new', '', created_at, created_at, 'system', '', 0 FROM alerts FINAL;
