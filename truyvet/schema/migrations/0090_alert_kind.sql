-- Alerts of another kind than a case contact (issue 15): `declaration` for a health declaration with
-- symptoms or contact with a case. Existing rows and writers that do not name it stay `contact`.
ALTER TABLE alerts ADD COLUMN kind String DEFAULT 'contact';
