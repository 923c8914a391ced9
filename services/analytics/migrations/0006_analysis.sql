-- analytics: analysis within the caller's data scope (AUM by org, level migration,
-- churn signals, RM performance, ad-hoc counts and sums). (0004 and 0005 are other
-- features.)

-- Each customer's closed months, replayed with its value (store::valuation): the daily
-- average per asset class (CNY fen, unweighted), their AUM total (loans excluded),
-- the weighted daily average the customer was levelled by, and the level on the
-- month's last day. Derived data: rewritten with the customer's value, dropped with it,
-- so a full recompute gives the same rows. Rows appear for existing customers at
-- their next recompute (RecomputeAll fills them all).
CREATE TABLE customer_month_value (
    customer_number   TEXT   NOT NULL,
    month             TEXT   NOT NULL CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    deposit           BIGINT NOT NULL,
    wealth_management BIGINT NOT NULL,
    settlement        BIGINT NOT NULL,
    loan              BIGINT NOT NULL,
    channel_product   BIGINT NOT NULL,
    aum_total         BIGINT NOT NULL,
    weighted_aum      BIGINT NOT NULL,
    level_code        TEXT   NOT NULL,
    PRIMARY KEY (customer_number, month)
);
CREATE INDEX customer_month_value_by_month ON customer_month_value (month, customer_number);

-- Level changes of a period by their effective dates (RM performance).
CREATE INDEX level_change_by_date ON level_change (effective_date);

-- The level customer `p_number` (a survivor with a value) was on at the end of
-- `p_date`, as GetLevelOn answers: the latest change in force (by effective date, then
-- decision order), else the level it started at (the first change's `from`, or its
-- current level when it never changed). Says nothing of whether the customer had a
-- balance by then: callers check that.
CREATE FUNCTION customer_level_on(p_number TEXT, p_date DATE) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT c.to_level FROM level_change c
         WHERE c.customer_number = p_number AND c.effective_date <= p_date
         ORDER BY c.effective_date DESC, c.seq DESC LIMIT 1),
        (SELECT c.from_level FROM level_change c WHERE c.customer_number = p_number ORDER BY c.seq LIMIT 1),
        (SELECT v.level_code FROM customer_value v WHERE v.customer_number = p_number))
$$;
