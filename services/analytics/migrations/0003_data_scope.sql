-- Data scope: who looks after each customer (a copy of customer-profile's assignments,
-- from CustomerAssigned) and the org tree (a copy of identity's, from OrgChanged).
-- Reads of customer value are filtered by them, as customer-profile filters parties.
-- (0002 is tags and segments.)

CREATE TABLE customer_assignment (
    customer_number TEXT PRIMARY KEY,
    home_org_id     TEXT,
    primary_rm_id   TEXT,
    related_rm_ids  TEXT[] NOT NULL DEFAULT '{}',
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE org_directory (
    org_id     TEXT PRIMARY KEY,
    path       TEXT NOT NULL CHECK (path LIKE '/%/'),
    closed     BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Whether customer `p_number` (a survivor) lies inside the scope ($2: all, subtree,
-- org, own; $3: org path, org id or user subject), as customer-profile's party_visible.
CREATE FUNCTION customer_visible(p_number TEXT, scope TEXT, arg TEXT) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT scope = 'all' OR EXISTS (
        SELECT 1 FROM customer_assignment a
        WHERE a.customer_number = p_number
          AND CASE scope
                WHEN 'own' THEN a.primary_rm_id = arg OR arg = ANY (a.related_rm_ids)
                WHEN 'org' THEN a.home_org_id = arg
                WHEN 'subtree' THEN
                    a.home_org_id = split_part(rtrim(arg, '/'), '/', -1)
                    OR EXISTS (SELECT 1 FROM org_directory o
                               WHERE o.org_id = a.home_org_id AND starts_with(o.path, arg))
                ELSE false
              END
    )
$$;
