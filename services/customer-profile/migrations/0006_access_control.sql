-- Data scope and access audit (docs/auth.md).

-- Org paths, kept from identity's OrgChanged events, so that "the caller's org subtree"
-- is a prefix test here without a call to identity per request.
CREATE TABLE org_directory (
    org_id     TEXT        PRIMARY KEY,
    path       TEXT        NOT NULL,
    closed     BOOLEAN     NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX org_directory_by_path ON org_directory (path text_pattern_ops);

-- Whether a party is inside a caller's data scope. `scope` is own / org / subtree / all;
-- `arg` is the caller's subject (own), org id (org) or org path (subtree). A customer
-- with no assignment is visible to `all` only. The home org itself counts for subtree
-- even before its directory entry arrives.
CREATE FUNCTION party_visible(p_party_id BIGINT, scope TEXT, arg TEXT) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT scope = 'all' OR EXISTS (
        SELECT 1 FROM party_assignment a
        WHERE a.party_id = p_party_id
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

-- Who read or changed which customer, when, from where: full 360° views and every
-- change. Auditors query it (customer.audit.read).
CREATE TABLE access_audit (
    audit_id        BIGSERIAL   PRIMARY KEY,
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor           TEXT        NOT NULL,
    actor_name      TEXT        NOT NULL DEFAULT '',
    action          TEXT        NOT NULL,
    customer_number TEXT,
    source_address  TEXT,
    trace_id        TEXT,
    details         JSONB       NOT NULL DEFAULT '{}'
);
CREATE INDEX access_audit_by_customer ON access_audit (customer_number, audit_id DESC);
CREATE INDEX access_audit_by_actor ON access_audit (actor, audit_id DESC);
