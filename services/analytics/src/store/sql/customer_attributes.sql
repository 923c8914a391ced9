-- What tag and segment conditions read of each valued customer: the stored value and
-- the transactions of the 90 days ending on the latest balance date (posted dates in
-- UTC). Amounts are absolute, in CNY fen at the latest rate on or before the posted
-- date (rounded half away from zero, as domain::facts::to_cny); one without a rate
-- counts in txn_count but not in txn_amount. With the overall RFM scores (customer_rfm,
-- NULL without a transaction in the RFM window) and the demographic attributes. $1: the customers, or NULL for all.
SELECT v.customer_number, v.level_code, v.level_since, v.watch_months, v.as_of, v.aum, v.month_aum,
       v.weighted_aum, v.month_weighted_aum, v.latest_closed_month,
       COALESCE(t.txn_count, 0) AS txn_count, COALESCE(t.txn_amount, 0) AS txn_amount,
       q.r AS rfm_r, q.f AS rfm_f, q.m AS rfm_m, d.birth_date, d.gender, d.region_code
FROM customer_value v
LEFT JOIN customer_rfm q ON q.customer_number = v.customer_number AND q.family = ''
LEFT JOIN customer_demographics d ON d.customer_number = v.customer_number
LEFT JOIN LATERAL (
    SELECT count(*)::BIGINT AS txn_count, sum(abs(x.cny))::BIGINT AS txn_amount
    FROM (
        SELECT cny_fen(f.amount_minor, f.currency_code, (f.posted_at AT TIME ZONE 'UTC')::DATE) AS cny
        FROM transaction_fact f
        WHERE f.customer_number = v.customer_number
          AND f.posted_at >= ((v.as_of - 89)::TIMESTAMP AT TIME ZONE 'UTC')
          AND f.posted_at < ((v.as_of + 1)::TIMESTAMP AT TIME ZONE 'UTC')
    ) x
) t ON v.as_of IS NOT NULL
WHERE $1::TEXT[] IS NULL OR v.customer_number = ANY($1)
ORDER BY v.customer_number
