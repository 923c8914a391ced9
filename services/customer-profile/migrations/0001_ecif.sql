-- The ECIF: parties (golden records), the identity groups that decide which source
-- records belong together, the source records themselves, suspect pairs for data
-- stewards, and party history.

CREATE SEQUENCE customer_number_seq START 1;

CREATE TABLE party (
    party_id        BIGSERIAL PRIMARY KEY,
    customer_number TEXT        NOT NULL UNIQUE,
    party_kind      TEXT        NOT NULL CHECK (party_kind IN ('PERSONAL', 'CORPORATE')),
    status          TEXT        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'MERGED')),
    -- For a MERGED party: the party that absorbed it, so that old numbers still resolve.
    merged_into     BIGINT      REFERENCES party (party_id),
    golden          JSONB       NOT NULL DEFAULT '{}',
    lineage         JSONB       NOT NULL DEFAULT '{}',
    quality_flags   TEXT[]      NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- All source records with the same identity key (ID type + matchable ID number +
-- normalised name) belong to the same party; a data steward may point two keys at one
-- party. Records of type OTHER have no key and never share a party.
CREATE TABLE identity_group (
    identity_digest TEXT   PRIMARY KEY,
    id_type         TEXT   NOT NULL,
    match_key       TEXT   NOT NULL,
    name_key        TEXT   NOT NULL,
    party_id        BIGINT NOT NULL REFERENCES party (party_id)
);
CREATE INDEX identity_group_by_id ON identity_group (id_type, match_key);
CREATE INDEX identity_group_by_party ON identity_group (party_id);

CREATE TABLE source_record (
    source_system      TEXT        NOT NULL,
    source_customer_id TEXT        NOT NULL,
    source_version     BIGINT      NOT NULL,
    party_id           BIGINT      NOT NULL REFERENCES party (party_id),
    identity_digest    TEXT,
    id_type            TEXT        NOT NULL,
    match_key          TEXT,
    -- The validated attributes as received (invalid optional values removed).
    attributes         JSONB       NOT NULL,
    quality_flags      TEXT[]      NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source_system, source_customer_id)
);
CREATE INDEX source_record_by_party ON source_record (party_id);
CREATE INDEX source_record_by_match ON source_record (id_type, match_key);

-- Same ID type and number, different names: not merged, but shown to a data steward.
-- Keyed by the two identity digests (a < b) so that a decision sticks to the identities,
-- and a DIFFERENT_PARTIES decision is never suggested again.
CREATE TABLE suspect_pair (
    suspect_pair_id BIGSERIAL PRIMARY KEY,
    digest_a        TEXT        NOT NULL,
    digest_b        TEXT        NOT NULL,
    id_type         TEXT        NOT NULL,
    match_key       TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'SAME_PARTY', 'DIFFERENT_PARTIES')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at     TIMESTAMPTZ,
    resolved_by     TEXT,
    UNIQUE (digest_a, digest_b),
    CHECK (digest_a < digest_b)
);
CREATE INDEX suspect_pair_open ON suspect_pair (suspect_pair_id) WHERE status = 'OPEN';

CREATE TABLE party_history (
    history_id         BIGSERIAL PRIMARY KEY,
    party_id           BIGINT      NOT NULL REFERENCES party (party_id),
    changed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor              TEXT,
    change_kind        TEXT        NOT NULL,
    source_system      TEXT,
    source_customer_id TEXT,
    before             JSONB,
    after              JSONB
);
CREATE INDEX party_history_by_party ON party_history (party_id, history_id);
