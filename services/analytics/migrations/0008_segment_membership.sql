-- analytics: segment membership kept current, with its history. Every customer's
-- membership of every segment is re-evaluated whenever the customer's attributes or
-- tags may have changed; each entry and exit is a row here, so "who was in the
-- segment at time T" answers from the rows alone. Segment definitions keep their
-- versions, so an as-of answer names the version then in force.
-- (0007 is demographics.) Segments defined before this migration get their members
-- with the next full recompute (RecomputeAll) or redefinition.

-- Every version of every segment definition (segment_definition holds the latest).
CREATE TABLE segment_version (
    segment_code TEXT    NOT NULL REFERENCES segment_definition (segment_code),
    version      INTEGER NOT NULL CHECK (version >= 1),
    name         TEXT    NOT NULL,
    condition    TEXT    NOT NULL,
    defined_by   TEXT    NOT NULL,
    defined_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (segment_code, version)
);
INSERT INTO segment_version (segment_code, version, name, condition, defined_by, defined_at)
SELECT segment_code, version, name, condition, defined_by, defined_at FROM segment_definition;

-- A customer's stay in a segment: from when analytics found the condition holding
-- (`entered_at`, under `entered_version`) until it found it no longer holding or the
-- customer gone (absorbed by a merge, or without a value): `left_at`, NULL while a
-- member. Times are the database clock when the change was written; a customer's
-- stays in one segment never overlap.
CREATE TABLE segment_membership (
    segment_code    TEXT    NOT NULL REFERENCES segment_definition (segment_code),
    customer_number TEXT    NOT NULL,
    entered_at      TIMESTAMPTZ NOT NULL,
    entered_version INTEGER NOT NULL CHECK (entered_version >= 1),
    left_at         TIMESTAMPTZ,
    left_version    INTEGER CHECK (left_version >= 1),
    CHECK ((left_at IS NULL) = (left_version IS NULL)),
    CHECK (left_at >= entered_at)
);
-- At most one open stay per segment and customer.
CREATE UNIQUE INDEX segment_membership_current ON segment_membership (segment_code, customer_number)
    WHERE left_at IS NULL;
CREATE INDEX segment_membership_open_by_customer ON segment_membership (customer_number) WHERE left_at IS NULL;
CREATE INDEX segment_membership_by_customer ON segment_membership (customer_number, entered_at);
CREATE INDEX segment_membership_entries ON segment_membership (segment_code, entered_at);
CREATE INDEX segment_membership_exits ON segment_membership (segment_code, left_at) WHERE left_at IS NOT NULL;

-- A snapshot taken as of a past time (NULL: the membership when it was taken).
ALTER TABLE segment_snapshot ADD COLUMN as_of TIMESTAMPTZ;
