-- ListChurnSignals, NO_TRANSACTIONS: visible valued customers with a balance before
-- day $1 and no transaction posted from $1 to $2 (both included; posted dates in UTC,
-- as the tag attributes read them), with their latest transaction before $1, by
-- customer number. $3, $4: the caller's data scope; $5 rows from position $6.
SELECT v.customer_number, NULL::BIGINT AS start_aum, NULL::BIGINT AS end_aum,
       (SELECT max(t.posted_at) FROM transaction_fact t
        WHERE t.customer_number = v.customer_number
          AND t.posted_at < ($1::DATE::TIMESTAMP AT TIME ZONE 'UTC')) AS last_transaction_at
FROM customer_value v
WHERE EXISTS (SELECT 1 FROM balance_snapshot b WHERE b.customer_number = v.customer_number AND b.balance_date < $1)
  AND NOT EXISTS (
      SELECT 1 FROM transaction_fact t
      WHERE t.customer_number = v.customer_number
        AND t.posted_at >= ($1::DATE::TIMESTAMP AT TIME ZONE 'UTC')
        AND t.posted_at < (($2::DATE + 1)::TIMESTAMP AT TIME ZONE 'UTC'))
  AND customer_visible(v.customer_number, $3, $4)
ORDER BY v.customer_number
LIMIT $5 OFFSET $6
