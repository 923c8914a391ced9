-- analytics: RFM (recency, frequency, monetary) and scorecards.
-- (0005 is business targets, 0006 analysis.)

-- An amount in CNY fen: CNY as is, another currency at its latest rate on or before
-- `on_day`, rounded half away from zero (as domain::facts::to_cny); NULL without a rate.
CREATE FUNCTION cny_fen(amount_minor BIGINT, currency_code TEXT, on_day DATE) RETURNS NUMERIC
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN currency_code = 'CNY' THEN amount_minor::NUMERIC
        ELSE round(amount_minor::NUMERIC
                   * (SELECT r.cny_per_unit_micros FROM fx_rate r
                      WHERE r.currency_code = cny_fen.currency_code AND r.rate_date <= on_day
                      ORDER BY r.rate_date DESC LIMIT 1)
                   / 1000000)
    END
$$;

-- The RFM look-back window: one row, changed by SetRfmWindow (analytics.define).
CREATE TABLE rfm_setting (
    only_row    BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    window_days INTEGER NOT NULL CHECK (window_days BETWEEN 1 AND 3660),
    changed_by  TEXT    NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO rfm_setting (window_days, changed_by) VALUES (365, 'migration');

-- Each customer's RFM, overall (`family` = '') and per product family, as the latest
-- rescore found it: derived from transaction_fact, rewritten whenever transactions,
-- their owners, the products or the window change. `scored_on` is the data date: the
-- latest day any balance or transaction is dated.
CREATE TABLE customer_rfm (
    customer_number TEXT     NOT NULL,
    family          TEXT     NOT NULL,
    scored_on       DATE     NOT NULL,
    recency_days    INTEGER  NOT NULL CHECK (recency_days >= 0),
    frequency       INTEGER  NOT NULL CHECK (frequency >= 1),
    monetary_minor  BIGINT   NOT NULL,
    r               SMALLINT NOT NULL CHECK (r BETWEEN 1 AND 5),
    f               SMALLINT NOT NULL CHECK (f BETWEEN 1 AND 5),
    m               SMALLINT NOT NULL CHECK (m BETWEEN 1 AND 5),
    PRIMARY KEY (customer_number, family)
);

-- A scorecard version as the bank defined it; `definition` is the domain's Scorecard
-- as JSON. Versions count from 1 per code; a new version never changes an old one.
CREATE TABLE scorecard (
    scorecard_code TEXT    NOT NULL CHECK (scorecard_code ~ '^[A-Za-z0-9_]{1,32}$'),
    version        INTEGER NOT NULL CHECK (version >= 1),
    name           TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    definition     JSONB   NOT NULL,
    defined_by     TEXT    NOT NULL,
    defined_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scorecard_code, version)
);
