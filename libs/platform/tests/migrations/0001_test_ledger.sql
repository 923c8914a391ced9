-- A stand-in for a service's own tables: a state change (ledger) and the effect an
-- event has on a consumer (applied_events, deliberately without a unique key so that a
-- double application would show).
CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, account TEXT NOT NULL, amount_minor BIGINT NOT NULL);
CREATE TABLE applied_events (message_id TEXT NOT NULL, subject TEXT NOT NULL, amount_minor BIGINT NOT NULL);
