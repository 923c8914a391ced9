-- The surviving party of a party: `merged_into` followed until a party that was not
-- merged (the party itself when it is active). At most 64 steps are followed; NULL
-- when there is no such party or no survivor within them. Every read that resolves a
-- customer number (an absorbed number answers with its survivor) goes through here.
CREATE FUNCTION surviving_party(p_party_id BIGINT) RETURNS BIGINT
LANGUAGE sql STABLE STRICT AS $$
    WITH RECURSIVE chain(party_id, merged_into, depth) AS (
        SELECT party_id, merged_into, 0 FROM party WHERE party_id = p_party_id
        UNION ALL
        SELECT p.party_id, p.merged_into, c.depth + 1
        FROM party p JOIN chain c ON p.party_id = c.merged_into
        WHERE c.depth < 64
    )
    SELECT party_id FROM chain WHERE merged_into IS NULL
$$;

-- A party's relationships in both directions, as the customer sees them: `inverse` when
-- the party is the object of the relationship; the other customer with its golden name.
-- Read by the relationship list and the 360° view alike.
CREATE FUNCTION party_relationships(p_party_id BIGINT)
RETURNS TABLE (kind TEXT, role TEXT, inverse BOOLEAN, related_customer_number TEXT, related_name TEXT)
LANGUAGE sql STABLE AS $$
    SELECT r.kind, r.role, false, o.customer_number, COALESCE(o.golden->>'name', '')
    FROM party_relationship r JOIN party o ON o.party_id = r.related_party_id WHERE r.party_id = p_party_id
    UNION ALL
    SELECT r.kind, r.role, true, o.customer_number, COALESCE(o.golden->>'name', '')
    FROM party_relationship r JOIN party o ON o.party_id = r.party_id WHERE r.related_party_id = p_party_id
$$;
