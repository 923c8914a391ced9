-- Who looks after each customer, the history of it, and look-up indexes for search.
CREATE TABLE party_assignment (
    party_id       BIGINT      PRIMARY KEY REFERENCES party (party_id),
    home_org_id    TEXT,
    primary_rm_id  TEXT,
    related_rm_ids TEXT[]      NOT NULL DEFAULT '{}',
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX party_assignment_by_org ON party_assignment (home_org_id);
CREATE INDEX party_assignment_by_rm ON party_assignment (primary_rm_id);
CREATE INDEX party_assignment_by_related_rm ON party_assignment USING gin (related_rm_ids);

CREATE TABLE assignment_history (
    history_id     BIGSERIAL   PRIMARY KEY,
    party_id       BIGINT      NOT NULL REFERENCES party (party_id),
    action         TEXT        NOT NULL CHECK (action IN ('ASSIGN', 'ADJUST', 'RECALL')),
    home_org_id    TEXT,
    primary_rm_id  TEXT,
    related_rm_ids TEXT[]      NOT NULL DEFAULT '{}',
    actor          TEXT,
    reason         TEXT,
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX assignment_history_by_party ON assignment_history (party_id, history_id);

-- Blind index of every ID number in matching form, including type OTHER (never merged,
-- but still found by search).
ALTER TABLE source_record ADD COLUMN id_index TEXT;
CREATE INDEX source_record_by_id_index ON source_record (id_index);

-- Name prefix search.
CREATE INDEX party_by_name ON party (lower(golden->>'name') text_pattern_ops);
