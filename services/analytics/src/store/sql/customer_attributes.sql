-- What tag and segment conditions read of each valued customer: the stored value and
-- the transactions of the 90 days ending on the latest balance date (posted dates in
-- UTC). Amounts are absolute, in CNY fen at the latest rate on or before the posted
-- date (rounded half away from zero, as domain::facts::to_cny); one without a rate
-- counts in txn_count but not in txn_amount. $1: one customer, or NULL for all.
SELECT v.customer_number, v.level_code, v.level_since, v.watch_months, v.as_of, v.aum, v.month_aum,
       v.weighted_aum, v.month_weighted_aum, v.latest_closed_month,
       COALESCE(t.txn_count, 0) AS txn_count, COALESCE(t.txn_amount, 0) AS txn_amount
FROM customer_value v
LEFT JOIN LATERAL (
    SELECT count(*)::BIGINT AS txn_count, sum(abs(x.cny))::BIGINT AS txn_amount
    FROM (
        SELECT CASE
                   WHEN f.currency_code = 'CNY' THEN f.amount_minor::NUMERIC
                   ELSE round(f.amount_minor::NUMERIC
                              * (SELECT r.cny_per_unit_micros FROM fx_rate r
                                 WHERE r.currency_code = f.currency_code
                                   AND r.rate_date <= (f.posted_at AT TIME ZONE 'UTC')::DATE
                                 ORDER BY r.rate_date DESC LIMIT 1)
                              / 1000000)
               END AS cny
        FROM transaction_fact f
        WHERE f.customer_number = v.customer_number
          AND f.posted_at >= ((v.as_of - 89)::TIMESTAMP AT TIME ZONE 'UTC')
          AND f.posted_at < ((v.as_of + 1)::TIMESTAMP AT TIME ZONE 'UTC')
    ) x
) t ON v.as_of IS NOT NULL
WHERE $1::TEXT IS NULL OR v.customer_number = $1
ORDER BY v.customer_number
