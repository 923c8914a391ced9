-- The 360° view of customer number $1 (an absorbed number resolves to its survivor),
-- and whether it lies inside the data scope ($2, $3: see party_visible). One row, or
-- none when there is no such customer. `me` is materialised so that the survivor is
-- resolved once (inlined, the planner would repeat the call for the assignment join).
WITH me AS MATERIALIZED (
    SELECT p.* FROM party p
    WHERE p.party_id = surviving_party((SELECT party_id FROM party WHERE customer_number = $1))
)
SELECT me.party_id, me.customer_number, me.party_kind, me.golden, me.lineage, me.quality_flags,
       me.created_at, me.updated_at,
       party_visible(me.party_id, $2, $3) AS visible,
       ARRAY(SELECT s.source_system FROM source_record s WHERE s.party_id = me.party_id
             ORDER BY s.source_system, s.source_customer_id) AS source_systems,
       ARRAY(SELECT s.source_customer_id FROM source_record s WHERE s.party_id = me.party_id
             ORDER BY s.source_system, s.source_customer_id) AS source_ids,
       a.party_id IS NOT NULL AS assigned, a.home_org_id, a.primary_rm_id,
       COALESCE(a.related_rm_ids, '{}') AS related_rm_ids, a.updated_at AS assigned_at,
       -- Open suspect pairs, by index look-ups from the party's own identities
       -- whatever the statistics say (OFFSET 0 keeps the status test out of the
       -- scans, where the planner would combine it with the index of all open pairs).
       (SELECT count(*) FROM identity_group mine
        CROSS JOIN LATERAL (
            SELECT s.digest_a AS other, s.status FROM suspect_pair s WHERE s.digest_b = mine.identity_digest
            UNION ALL
            SELECT s.digest_b, s.status FROM suspect_pair s WHERE s.digest_a = mine.identity_digest
            OFFSET 0) pair
        WHERE mine.party_id = me.party_id AND pair.status = 'OPEN'
          AND (SELECT g.party_id FROM identity_group g WHERE g.identity_digest = pair.other) <> me.party_id
       ) AS open_suspect_pairs,
       (SELECT COALESCE(jsonb_agg(r ORDER BY r.kind, r.related_customer_number, r.role), '[]')
        FROM party_relationships(me.party_id) r) AS relationships,
       (SELECT COALESCE(jsonb_agg(h ORDER BY h.history_id DESC), '[]') FROM (
            SELECT h.history_id, h.change_kind, (extract(epoch FROM h.changed_at) * 1000000)::bigint AS at_us,
                   h.actor, h.source_system, h.source_customer_id, h.before, h.after
            FROM party_history h WHERE h.party_id = me.party_id ORDER BY h.history_id DESC LIMIT 10
        ) h) AS history,
       (SELECT COALESCE(jsonb_agg(jsonb_build_array(d.detail_id, encode(d.payload, 'base64'),
                                                    (extract(epoch FROM d.updated_at) * 1000000)::bigint)
                                  ORDER BY d.kind, d.detail_id), '[]')
        FROM party_detail d WHERE d.party_id = me.party_id) AS details,
       (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}')
        FROM party_extended_attribute e WHERE e.party_id = me.party_id) AS extended
FROM me LEFT JOIN party_assignment a ON a.party_id = me.party_id
