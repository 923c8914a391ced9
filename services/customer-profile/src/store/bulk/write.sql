-- Everything a run of the set-based path writes to the ECIF tables, in one statement
-- (see `write.rs`): founded parties ($1-$6), touched parties ($7-$10), new identity
-- groups ($11-$15), inserted source records ($16-$26), replaced source records
-- ($27-$37), history rows in order ($38 actor, $39-$44), and at the end PostgreSQL's
-- plan settings back to their defaults ($45, $46). Flags travel comma-joined.
WITH founded AS (
    INSERT INTO party (party_id, customer_number, party_kind, golden, lineage, quality_flags)
    SELECT id, number, kind, golden, lineage, string_to_array(flags, ',')
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[])
         AS u(id, number, kind, golden, lineage, flags)
), touched AS (
    UPDATE party p SET golden = u.golden, lineage = u.lineage,
           quality_flags = string_to_array(u.flags, ','), updated_at = now()
    FROM unnest($7::bigint[], $8::jsonb[], $9::jsonb[], $10::text[]) AS u(id, golden, lineage, flags)
    WHERE p.party_id = u.id
), groups AS (
    INSERT INTO identity_group (identity_digest, id_type, match_key, name_key, party_id)
    SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])
), inserted AS (
    INSERT INTO source_record (source_system, source_customer_id, source_version, party_id,
                               identity_digest, id_type, match_key, attributes, quality_flags,
                               phone_index, id_index)
    SELECT sys, id, version, party, digest, id_type, blind, attrs, string_to_array(flags, ','),
           phone, id_index
    FROM unnest($16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::text[], $21::text[],
                $22::text[], $23::jsonb[], $24::text[], $25::text[], $26::text[])
         AS u(sys, id, version, party, digest, id_type, blind, attrs, flags, phone, id_index)
), updated AS (
    UPDATE source_record s SET source_version = u.version, party_id = u.party,
           identity_digest = u.digest, id_type = u.id_type, match_key = u.blind, attributes = u.attrs,
           quality_flags = string_to_array(u.flags, ','), phone_index = u.phone,
           id_index = u.id_index, updated_at = now()
    FROM unnest($27::text[], $28::text[], $29::bigint[], $30::bigint[], $31::text[], $32::text[],
                $33::text[], $34::jsonb[], $35::text[], $36::text[], $37::text[])
         AS u(sys, id, version, party, digest, id_type, blind, attrs, flags, phone, id_index)
    WHERE s.source_system = u.sys AND s.source_customer_id = u.id
), history AS (
    INSERT INTO party_history (party_id, actor, change_kind, source_system, source_customer_id,
                               before, after)
    SELECT h.party, $38, h.kind, h.sys, h.id, h.before, h.after
    FROM unnest($39::bigint[], $40::text[], $41::text[], $42::text[], $43::jsonb[], $44::jsonb[])
         WITH ORDINALITY AS h(party, kind, sys, id, before, after, n)
    ORDER BY h.n
)
SELECT set_config(n, v, true) FROM unnest($45::text[], $46::text[]) AS s(n, v)
