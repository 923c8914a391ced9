-- analytics: revaluation runs beside ingestion. A change that can move a customer's
-- value (its facts, their owner, the catalogue, an FX rate, its demographics) marks the
-- customer due in the transaction of the change; the revaluer (src/revaluer.rs) takes
-- due customers in batches, recomputes them and clears them in one transaction, so a
-- crash loses nothing and a customer marked again meanwhile is revalued again.
-- (0008 is segment membership, 0009 the balance file.)
CREATE TABLE revaluation_due (
    customer_number TEXT PRIMARY KEY,
    due_since       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX revaluation_due_by_age ON revaluation_due (due_since);

-- When the revaluer last revalued customers and last rescored the RFM population: the
-- derived data is settled when nothing is due and the rescore is not older than the
-- last revaluation.
CREATE TABLE revaluation_state (
    only_row    BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    revalued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    rescored_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO revaluation_state DEFAULT VALUES;
