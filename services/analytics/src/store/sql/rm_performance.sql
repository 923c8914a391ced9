-- GetRmPerformance: visible customers with a balance by the end of the period (a row
-- for its last month $2), grouped by primary RM ('' without one): their weighted daily
-- averages of months $1 and $2 summed (0 for a customer without a row for $1), and
-- their level changes effective from day $3 to day $4. $5, $6: the caller's data scope.
SELECT COALESCE(a.primary_rm_id, '') AS rm_id,
       count(*)::BIGINT AS customer_count,
       COALESCE(sum(s.weighted_aum), 0)::BIGINT AS start_aum,
       sum(e.weighted_aum)::BIGINT AS end_aum,
       COALESCE(sum(c.upgrades), 0)::BIGINT AS upgrades,
       COALESCE(sum(c.downgrades), 0)::BIGINT AS downgrades
FROM customer_month_value e
LEFT JOIN customer_assignment a ON a.customer_number = e.customer_number
LEFT JOIN customer_month_value s ON s.customer_number = e.customer_number AND s.month = $1
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE l.kind = 'upgrade') AS upgrades,
           count(*) FILTER (WHERE l.kind = 'downgrade') AS downgrades
    FROM level_change l
    WHERE l.customer_number = e.customer_number AND l.effective_date BETWEEN $3 AND $4
) c
WHERE e.month = $2 AND customer_visible(e.customer_number, $5, $6)
GROUP BY 1
ORDER BY 1
