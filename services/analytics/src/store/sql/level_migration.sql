-- GetLevelMigration: visible valued customers counted by their level at the end of
-- $1 and at the end of $2 (customer_level_on, as GetLevelOn answers); '' on $1 for a
-- customer whose first balance came after it; customers without a balance by $2 are
-- left out. $3, $4: the caller's data scope.
SELECT CASE WHEN f.first_day <= $1 THEN customer_level_on(v.customer_number, $1) ELSE '' END AS from_level,
       customer_level_on(v.customer_number, $2) AS to_level,
       count(*)::BIGINT AS customer_count
FROM customer_value v
CROSS JOIN LATERAL (
    SELECT min(b.balance_date) AS first_day FROM balance_snapshot b WHERE b.customer_number = v.customer_number
) f
WHERE f.first_day <= $2 AND customer_visible(v.customer_number, $3, $4)
GROUP BY 1, 2
ORDER BY 1, 2
