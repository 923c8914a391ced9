-- analytics: business targets (经营指标). Head office issues a target for an indicator
-- and a period to an org (the root of a tree); each org decomposes its target to
-- sub-orgs and RMs. Progress is computed on request from the facts (store/targets.rs).
-- (0004 is another change's.)

-- Every target of every tree: the issued one (parent_id NULL, root_id = target_id) and
-- the shares decomposed from it. Indicator and period are the root's, copied down so
-- that a period's targets are found without walking trees. `booked_at` is where the
-- target's actuals are booked in the org tree: an org's own path, or for an RM the
-- path of the org whose target the RM's was decomposed from. Dropping a target drops
-- what was decomposed below it.
CREATE TABLE target (
    target_id      UUID PRIMARY KEY,
    root_id        UUID    NOT NULL,
    parent_id      UUID REFERENCES target (target_id) ON DELETE CASCADE,
    indicator_kind TEXT    NOT NULL
        CHECK (indicator_kind IN ('aum_growth', 'customers_at_level', 'product_sales', 'new_customers')),
    indicator_code TEXT    NOT NULL DEFAULT '',
    period_from    DATE    NOT NULL,
    period_to      DATE    NOT NULL CHECK (period_to >= period_from),
    org_path       TEXT CHECK (org_path LIKE '/%/'),
    rm_id          TEXT,
    booked_at      TEXT    NOT NULL CHECK (booked_at LIKE '/%/'),
    value          BIGINT  NOT NULL CHECK (value >= 0),
    created_by     TEXT    NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((org_path IS NULL) <> (rm_id IS NULL)),
    CHECK ((parent_id IS NULL) = (root_id = target_id)),
    CHECK (parent_id IS NOT NULL OR org_path IS NOT NULL)
);
-- An assignee has one target per tree (progress rolls up one figure per assignee).
CREATE UNIQUE INDEX target_org_once ON target (root_id, org_path) WHERE org_path IS NOT NULL;
CREATE UNIQUE INDEX target_rm_once ON target (root_id, rm_id) WHERE rm_id IS NOT NULL;
-- An org is issued one target per indicator and period.
CREATE UNIQUE INDEX target_issued_once ON target (org_path, indicator_kind, indicator_code, period_from, period_to)
    WHERE parent_id IS NULL;
CREATE INDEX target_by_parent ON target (parent_id);
CREATE INDEX target_by_period ON target (period_from, period_to);

-- Every split of a target, as decided: `version` counts from 1, `shares` is the split
-- ([{"assignee": {"org": "/1/12/"} | {"rm": "7"}, "value": n}]). The latest version is
-- the target's children now; earlier ones are history.
CREATE TABLE target_split (
    target_id     UUID    NOT NULL REFERENCES target (target_id) ON DELETE CASCADE,
    version       INTEGER NOT NULL CHECK (version >= 1),
    shares        JSONB   NOT NULL,
    decomposed_by TEXT    NOT NULL,
    decomposed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (target_id, version)
);

-- When customer-profile created the customer (its CustomerCreated), for "new
-- customers"; NULL when analytics learnt of the customer otherwise (known_at stands in).
ALTER TABLE customer ADD COLUMN created_at TIMESTAMPTZ;

-- Whether a target booked at org path `p_booked_at` (for an RM target, also `p_rm_id`)
-- lies inside the scope ($3: all, subtree, org, own; $4: org path, org id or user
-- subject), as customer_visible does for customers: a subtree sees the orgs under its
-- path and the RMs decomposed under them, an org its own target and its RMs', an RM
-- its own targets.
CREATE FUNCTION target_visible(p_booked_at TEXT, p_rm_id TEXT, scope TEXT, arg TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE scope
        WHEN 'all' THEN true
        WHEN 'subtree' THEN starts_with(p_booked_at, arg)
        WHEN 'org' THEN split_part(rtrim(p_booked_at, '/'), '/', -1) = arg
        WHEN 'own' THEN p_rm_id IS NOT NULL AND p_rm_id = arg
        ELSE false
    END
$$;
