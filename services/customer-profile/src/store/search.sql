-- Active customers matching every given criterion (a NULL criterion matches all), by
-- party id after $1, at most $8, inside the data scope ($9, $10: see party_visible).
-- $2: blind indexes the ID number may be stored under; $3: blind index of the phone;
-- $4 / $5: lower-cased name prefix / fragment (LIKE wildcards escaped); $6: home org;
-- $7: primary or related RM.
SELECT p.party_id, p.customer_number, p.party_kind, p.golden, a.home_org_id, a.primary_rm_id
FROM party p LEFT JOIN party_assignment a ON a.party_id = p.party_id
WHERE p.status = 'ACTIVE' AND p.party_id > $1
  AND ($2::text[] IS NULL OR p.party_id IN (SELECT party_id FROM source_record WHERE id_index = ANY($2)))
  AND ($3::text IS NULL OR p.party_id IN (SELECT party_id FROM source_record WHERE phone_index = $3))
  AND ($4::text IS NULL OR lower(p.golden->>'name') LIKE $4 || '%')
  AND ($5::text IS NULL OR lower(p.golden->>'name') LIKE '%' || $5 || '%')
  AND ($6::text IS NULL OR a.home_org_id = $6)
  AND ($7::text IS NULL OR a.primary_rm_id = $7 OR $7 = ANY(a.related_rm_ids))
  AND party_visible(p.party_id, $9, $10)
ORDER BY p.party_id LIMIT $8
