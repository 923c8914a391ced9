-- analytics: tags (客户标签) and segments (客群). A tag is given by its rule or set by
-- staff; a segment is a saved condition whose evaluation is kept as a snapshot of its
-- members, for marketing to read back unchanged later.

-- A tag as the bank defined it. `rule` is the canonical source of the condition (NULL
-- for a manual tag); `version` counts the definitions of the code, from 1.
CREATE TABLE tag_definition (
    tag_code   TEXT PRIMARY KEY CHECK (tag_code ~ '^[a-z0-9_]{1,32}$'),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind       TEXT    NOT NULL CHECK (kind IN ('rule', 'manual')),
    rule       TEXT,
    version    INTEGER NOT NULL CHECK (version >= 1),
    defined_by TEXT    NOT NULL,
    defined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'rule') = (rule IS NOT NULL))
);

-- The tags customers have now: rule tags as the rules found them on the latest
-- recompute (derived, rewritten), manual tags as staff set them. `since` is when
-- analytics first found the tag on the customer (rule) or staff set it (manual).
CREATE TABLE customer_tag (
    customer_number TEXT NOT NULL,
    tag_code        TEXT NOT NULL REFERENCES tag_definition (tag_code) ON DELETE CASCADE,
    source          TEXT NOT NULL CHECK (source IN ('rule', 'manual')),
    since           TIMESTAMPTZ NOT NULL DEFAULT now(),
    set_by          TEXT,
    PRIMARY KEY (customer_number, tag_code, source),
    CHECK ((source = 'manual') = (set_by IS NOT NULL))
);
CREATE INDEX customer_tag_by_tag ON customer_tag (tag_code, customer_number);

-- A customer's rule tags go with its value (a customer without a value has none).
CREATE FUNCTION forget_rule_tags() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_tag WHERE customer_number = OLD.customer_number AND source = 'rule';
    RETURN OLD;
END
$$;
CREATE TRIGGER customer_value_forgotten AFTER DELETE ON customer_value
    FOR EACH ROW EXECUTE FUNCTION forget_rule_tags();

-- An absorbed customer keeps no tags (its survivor is tagged on its own facts).
CREATE FUNCTION forget_absorbed_tags() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_tag WHERE customer_number = NEW.customer_number;
    RETURN NEW;
END
$$;
CREATE TRIGGER customer_absorbed AFTER UPDATE OF merged_into ON customer
    FOR EACH ROW WHEN (NEW.merged_into IS NOT NULL) EXECUTE FUNCTION forget_absorbed_tags();

-- A segment as the bank defined it: the canonical source of its condition.
CREATE TABLE segment_definition (
    segment_code TEXT PRIMARY KEY CHECK (segment_code ~ '^[a-z0-9_]{1,32}$'),
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    condition    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    defined_by   TEXT    NOT NULL,
    defined_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One evaluation of a segment: the definition it used and how many members it found.
CREATE TABLE segment_snapshot (
    snapshot_id     UUID PRIMARY KEY,
    segment_code    TEXT    NOT NULL REFERENCES segment_definition (segment_code),
    segment_version INTEGER NOT NULL CHECK (segment_version >= 1),
    condition       TEXT    NOT NULL,
    member_count    BIGINT  NOT NULL CHECK (member_count >= 0),
    evaluated_by    TEXT    NOT NULL,
    evaluated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The members of a snapshot, as they were when it was taken.
CREATE TABLE segment_member (
    snapshot_id     UUID NOT NULL REFERENCES segment_snapshot (snapshot_id) ON DELETE CASCADE,
    customer_number TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, customer_number)
);
