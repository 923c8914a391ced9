-- analytics: the facts it is fed, the copy of customer-profile's identification it
-- resolves them with, and what it derives (value, levels). Migrations only move
-- forward: a released one is never edited.

-- Customers as customer-profile announced them. An absorbed customer points at the
-- customer that absorbed it.
CREATE TABLE customer (
    customer_number TEXT PRIMARY KEY,
    merged_into     TEXT REFERENCES customer (customer_number),
    known_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Which customer each source record belongs to (from CustomerCreated/Updated/Unmerged).
CREATE TABLE source_key (
    source_system      TEXT NOT NULL,
    source_customer_id TEXT NOT NULL,
    customer_number    TEXT NOT NULL REFERENCES customer (customer_number),
    PRIMARY KEY (source_system, source_customer_id)
);
CREATE INDEX source_key_by_customer ON source_key (customer_number);

-- The survivor of a customer number: merged_into followed (at most 64 steps); NULL
-- when the number is not known. PL/pgSQL so that its look-up is planned once.
CREATE FUNCTION surviving_customer(p_number TEXT) RETURNS TEXT
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    current TEXT := p_number;
    next_number TEXT;
BEGIN
    FOR step IN 0..64 LOOP
        SELECT merged_into INTO next_number FROM customer WHERE customer_number = current;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF next_number IS NULL THEN
            RETURN current;
        END IF;
        current := next_number;
    END LOOP;
    RETURN NULL;
END
$$;

-- The owner of a fact from how it named its customer: the source record's customer,
-- else the customer number's survivor; NULL while not known (the fact waits).
CREATE FUNCTION fact_owner(p_number TEXT, p_system TEXT, p_id TEXT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_system IS NOT NULL THEN
            surviving_customer((SELECT k.customer_number FROM source_key k
                                WHERE k.source_system = p_system AND k.source_customer_id = p_id))
        ELSE surviving_customer(p_number)
    END
$$;

CREATE TABLE product (
    product_code  TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    asset_class   TEXT NOT NULL CHECK (asset_class IN ('deposit', 'wealth_management', 'settlement', 'loan', 'channel_product')),
    risk_level    SMALLINT NOT NULL CHECK (risk_level BETWEEN 1 AND 5),
    aum_weight_bp INTEGER NOT NULL CHECK (aum_weight_bp BETWEEN 0 AND 100000),
    family        TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- CNY per unit of a currency on a date, × 1,000,000.
CREATE TABLE fx_rate (
    currency_code       TEXT   NOT NULL,
    rate_date           DATE   NOT NULL,
    cny_per_unit_micros BIGINT NOT NULL CHECK (cny_per_unit_micros > 0),
    PRIMARY KEY (currency_code, rate_date)
);

-- A day's closing balance of an account, as sent. `customer_number` is the owner
-- (fact_owner of the reference); NULL while the customer is not known.
CREATE TABLE balance_snapshot (
    account_id         TEXT   NOT NULL,
    balance_date       DATE   NOT NULL,
    ref_customer_number TEXT,
    ref_source_system  TEXT,
    ref_source_id      TEXT,
    customer_number    TEXT,
    product_code       TEXT   NOT NULL REFERENCES product (product_code),
    amount_minor       BIGINT NOT NULL,
    currency_code      TEXT   NOT NULL,
    loaded_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, balance_date),
    CHECK ((ref_customer_number IS NULL) <> (ref_source_system IS NULL))
);
CREATE INDEX balance_by_customer ON balance_snapshot (customer_number, balance_date);
CREATE INDEX balance_waiting ON balance_snapshot (ref_source_system, ref_source_id, ref_customer_number)
    WHERE customer_number IS NULL;
CREATE INDEX balance_by_source ON balance_snapshot (ref_source_system, ref_source_id)
    WHERE ref_source_system IS NOT NULL;

-- A posted transaction, as sent; owner as for balances.
CREATE TABLE transaction_fact (
    transaction_id      TEXT PRIMARY KEY,
    ref_customer_number TEXT,
    ref_source_system   TEXT,
    ref_source_id       TEXT,
    customer_number     TEXT,
    account_id          TEXT   NOT NULL,
    product_code        TEXT   NOT NULL REFERENCES product (product_code),
    amount_minor        BIGINT NOT NULL,
    currency_code       TEXT   NOT NULL,
    channel             TEXT   NOT NULL,
    posted_at           TIMESTAMPTZ NOT NULL,
    region_code         TEXT   NOT NULL DEFAULT '',
    loaded_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((ref_customer_number IS NULL) <> (ref_source_system IS NULL))
);
CREATE INDEX transaction_by_customer ON transaction_fact (customer_number, posted_at);
CREATE INDEX transaction_waiting ON transaction_fact (ref_source_system, ref_source_id, ref_customer_number)
    WHERE customer_number IS NULL;
CREATE INDEX transaction_by_source ON transaction_fact (ref_source_system, ref_source_id)
    WHERE ref_source_system IS NOT NULL;

-- Level rule versions; `rule` is the domain's LevelRule as JSON.
CREATE TABLE level_rule (
    version        INTEGER PRIMARY KEY,
    effective_from DATE    NOT NULL,
    rule           JSONB   NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Months whose daily averages are final and whose month-end decisions are taken.
CREATE TABLE closed_month (
    month     TEXT PRIMARY KEY CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    closed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_by TEXT NOT NULL
);

-- What a customer is worth now: derived from the facts, replaced on every recompute.
CREATE TABLE customer_value (
    customer_number     TEXT PRIMARY KEY,
    level_code          TEXT    NOT NULL,
    level_since         DATE,
    watch_months        INTEGER NOT NULL DEFAULT 0,
    as_of               DATE,
    aum                 JSONB   NOT NULL,
    month_aum           JSONB   NOT NULL,
    weighted_aum        BIGINT  NOT NULL,
    month_weighted_aum  BIGINT  NOT NULL,
    latest_closed_month TEXT,
    computed_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customer_value_by_level ON customer_value (level_code);

-- Every level change of a customer, replayed from its facts: `seq` orders them;
-- `inputs` holds what decided it.
CREATE TABLE level_change (
    customer_number TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    from_level      TEXT    NOT NULL,
    to_level        TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('upgrade', 'downgrade')),
    effective_date  DATE    NOT NULL,
    rule_version    INTEGER NOT NULL,
    explanation     TEXT    NOT NULL,
    PRIMARY KEY (customer_number, seq)
);
