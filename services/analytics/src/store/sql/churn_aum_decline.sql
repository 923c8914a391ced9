-- ListChurnSignals, AUM_DECLINE: visible customers whose weighted daily average of
-- month $2 is more than $3 % below that of month $1 (which must be positive), by
-- customer number. $4, $5: the caller's data scope; $6 rows from position $7.
SELECT s.customer_number, s.weighted_aum AS start_aum, e.weighted_aum AS end_aum,
       NULL::TIMESTAMPTZ AS last_transaction_at
FROM customer_month_value s
JOIN customer_month_value e ON e.customer_number = s.customer_number AND e.month = $2
WHERE s.month = $1
  AND s.weighted_aum > 0
  AND (s.weighted_aum::NUMERIC - e.weighted_aum) * 100 > $3::NUMERIC * s.weighted_aum
  AND customer_visible(s.customer_number, $4, $5)
ORDER BY s.customer_number
LIMIT $6 OFFSET $7
