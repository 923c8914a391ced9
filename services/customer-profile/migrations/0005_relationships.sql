-- Relationships between customers: person ↔ company roles, group parent/subsidiary,
-- shared legal representative, family.
CREATE TABLE party_relationship (
    party_id         BIGINT      NOT NULL REFERENCES party (party_id),
    kind             TEXT        NOT NULL,
    related_party_id BIGINT      NOT NULL REFERENCES party (party_id),
    role             TEXT        NOT NULL DEFAULT '',
    actor            TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, kind, related_party_id, role),
    CHECK (party_id <> related_party_id)
);
CREATE INDEX party_relationship_inverse ON party_relationship (related_party_id);
