-- Maintained details of a golden record (contacts, addresses, family members, family
-- assets and liabilities, major events, key persons, corporate profile) and extended
-- attributes. Details are kept as their protobuf encoding (crm.customer.v1.PartyDetail,
-- phone and ID numbers already encrypted) so that new detail fields need no migration.
CREATE TABLE party_detail (
    party_id   BIGINT      NOT NULL REFERENCES party (party_id),
    detail_id  TEXT        NOT NULL,
    kind       TEXT        NOT NULL,
    payload    BYTEA       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, detail_id)
);
CREATE INDEX party_detail_by_kind ON party_detail (party_id, kind);

CREATE TABLE party_extended_attribute (
    party_id   BIGINT      NOT NULL REFERENCES party (party_id),
    key        TEXT        NOT NULL,
    value      TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, key)
);
