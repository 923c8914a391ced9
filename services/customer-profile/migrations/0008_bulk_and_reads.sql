-- The 360° view counts a customer's open suspect pairs from its identities: pairs are
-- found by either side's digest (digest_a is covered by the unique key).
CREATE INDEX suspect_pair_by_digest_b ON suspect_pair (digest_b);

-- Source records are searched by `id_index` (the same blind index as `match_key` for
-- every mergeable ID type); nothing looks them up by (id_type, match_key), and each
-- index costs every bulk insert.
DROP INDEX source_record_by_match;
