-- Staff, orgs, roles, service accounts, tokens and identity's own audit trail.

-- The org tree as a materialised path of org ids ("/HO/BJ/BJ01/"): a subtree is a
-- prefix, so every service can test "inside my subtree" without walking the tree.
CREATE TABLE org (
    org_id        TEXT        PRIMARY KEY CHECK (org_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    name          TEXT        NOT NULL,
    parent_org_id TEXT        REFERENCES org (org_id),
    path          TEXT        NOT NULL UNIQUE,
    closed        BOOLEAN     NOT NULL DEFAULT false,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX org_by_path ON org (path text_pattern_ops);
-- One root only.
CREATE UNIQUE INDEX org_single_root ON org ((parent_org_id IS NULL)) WHERE parent_org_id IS NULL;

CREATE TABLE role (
    code        TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    permissions TEXT[]  NOT NULL DEFAULT '{}',
    data_scope  TEXT    NOT NULL CHECK (data_scope IN ('own', 'org', 'subtree', 'all')),
    built_in    BOOLEAN NOT NULL DEFAULT false
);

-- The built-in roles of docs/auth.md.
INSERT INTO role (code, name, permissions, data_scope, built_in) VALUES
  ('ADMIN', 'Administrator',
   '{identity.admin,identity.audit.read,customer.read,customer.write,customer.pii.read,customer.assign,customer.steward,customer.audit.read,marketing.task.approve}',
   'all', true),
  ('RM', 'Relationship manager', '{customer.read}', 'own', true),
  ('RM_SUPERVISOR', 'RM supervisor', '{customer.read,customer.assign}', 'subtree', true),
  ('MARKETING_MANAGER', 'Marketing manager', '{customer.read,marketing.task.approve}', 'subtree', true),
  ('SERVICE_AGENT', 'Service agent', '{customer.read}', 'org', true),
  ('DATA_STEWARD', 'Data steward', '{customer.read,customer.pii.read,customer.steward}', 'all', true),
  ('AUDITOR', 'Auditor', '{identity.audit.read,customer.audit.read}', 'all', true),
  ('SOURCE_SYSTEM', 'Source system', '{customer.read,customer.write}', 'all', true);

-- A principal is a staff user or a service account; tokens name it by `subject`
-- (user id or client id).
CREATE TABLE principal (
    subject         TEXT        PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN ('user', 'service')),
    login           TEXT        NOT NULL UNIQUE,
    display_name    TEXT        NOT NULL,
    org_id          TEXT        NOT NULL REFERENCES org (org_id),
    secret_hash     TEXT        NOT NULL,          -- argon2id PHC string
    disabled        BOOLEAN     NOT NULL DEFAULT false,
    failed_attempts INT         NOT NULL DEFAULT 0,
    locked_until    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX principal_by_org ON principal (org_id) WHERE NOT disabled;

CREATE TABLE principal_role (
    subject   TEXT NOT NULL REFERENCES principal (subject),
    role_code TEXT NOT NULL REFERENCES role (code),
    PRIMARY KEY (subject, role_code)
);

-- Refresh tokens, stored only as SHA-256; a family is one login's chain of rotations.
CREATE TABLE refresh_token (
    token_hash  TEXT        PRIMARY KEY,
    family_id   UUID        NOT NULL,
    subject     TEXT        NOT NULL REFERENCES principal (subject),
    issued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_token_by_family ON refresh_token (family_id);
CREATE INDEX refresh_token_by_subject ON refresh_token (subject) WHERE revoked_at IS NULL;

-- Ed25519 signing keys; the seed is AES-256-GCM encrypted with the key-encryption key.
CREATE TABLE signing_key (
    kid            TEXT        PRIMARY KEY,
    seed_encrypted TEXT        NOT NULL,
    public_key     BYTEA       NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX signing_key_one_current ON signing_key ((retired_at IS NULL)) WHERE retired_at IS NULL;

CREATE TABLE identity_audit (
    audit_id       BIGSERIAL   PRIMARY KEY,
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor          TEXT        NOT NULL,
    action         TEXT        NOT NULL,
    target         TEXT,
    source_address TEXT,
    details        JSONB       NOT NULL DEFAULT '{}'
);
CREATE INDEX identity_audit_by_actor ON identity_audit (actor, audit_id DESC);
CREATE INDEX identity_audit_by_action ON identity_audit (action, audit_id DESC);
