-- Principals whose access tokens issued before `not_before` are refused (user disabled,
-- password reset). Kept per service so that every replica, and a restarted one, applies
-- revocations without asking identity on each call.
CREATE TABLE crm_kit.revoked_principal (
    subject     TEXT        PRIMARY KEY,
    not_before  TIMESTAMPTZ NOT NULL,
    reason      TEXT,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
