-- The audit trail of every service: who did what to which subject (a customer number,
-- a user id, a role code…), when, from where and under which trace. Written in the
-- transaction of the change it records, or by the group-commit audit writer for reads
-- that must be audited before they answer. Never updated; auditors page through it.
CREATE TABLE crm_kit.audit_entry (
    audit_id       BIGSERIAL   PRIMARY KEY,
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor          TEXT        NOT NULL,
    actor_name     TEXT        NOT NULL DEFAULT '',
    action         TEXT        NOT NULL,
    subject        TEXT,
    source_address TEXT,
    trace_id       TEXT,
    details        JSONB       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_entry_by_subject ON crm_kit.audit_entry (subject, audit_id DESC);
CREATE INDEX audit_entry_by_actor ON crm_kit.audit_entry (actor, audit_id DESC);
CREATE INDEX audit_entry_by_action ON crm_kit.audit_entry (action, audit_id DESC);
CREATE INDEX audit_entry_by_time ON crm_kit.audit_entry (occurred_at);
