-- The platform kit's own tables, kept in the crm_kit schema so that they never clash
-- with a service's tables and migrate independently of them.

-- Events waiting to be published. A row is written in the same transaction as the
-- state change it announces, so an event exists if and only if the change committed.
CREATE TABLE crm_kit.outbox (
    seq           BIGSERIAL PRIMARY KEY,           -- commit order; the relay publishes by it
    event_id      UUID        NOT NULL UNIQUE,     -- CloudEvents id
    event_type    TEXT        NOT NULL,            -- fully qualified protobuf name
    source        TEXT        NOT NULL,
    subject       TEXT        NOT NULL,            -- aggregate key; order holds per subject
    payload       BYTEA       NOT NULL,
    traceparent   TEXT,
    tracestate    TEXT,
    actor         TEXT,
    occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ,
    attempts      INT         NOT NULL DEFAULT 0,
    last_error    TEXT
);

CREATE INDEX outbox_pending ON crm_kit.outbox (seq) WHERE published_at IS NULL;

-- Wakes the relay as soon as an event commits instead of waiting for its next poll.
CREATE FUNCTION crm_kit.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_kit_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON crm_kit.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION crm_kit.outbox_notify();

-- Messages a consumer has applied, written in the handler's own transaction, so that a
-- redelivered message is recognised and skipped.
CREATE TABLE crm_kit.inbox (
    consumer    TEXT        NOT NULL,
    message_id  TEXT        NOT NULL,
    event_type  TEXT        NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
