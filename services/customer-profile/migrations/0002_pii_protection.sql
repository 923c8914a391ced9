-- ID and phone numbers are stored encrypted (inside `attributes` / `golden`) and
-- looked up through keyed blind indexes: `source_record.match_key` and
-- `identity_group.match_key` hold the blind index of the ID number's matching form,
-- and the phone gets its own.
ALTER TABLE source_record ADD COLUMN phone_index TEXT;
CREATE INDEX source_record_by_phone ON source_record (phone_index) WHERE phone_index IS NOT NULL;
COMMENT ON COLUMN source_record.match_key IS 'blind index (HMAC) of the ID number in matching form';
COMMENT ON COLUMN identity_group.match_key IS 'blind index (HMAC) of the ID number in matching form';
