-- The actuals of a target tree, per booking: (org_path, NULL, value) for customers
-- booked directly at their home org, (NULL, rm_id, value) for customers whose primary
-- RM has a target in the tree. Customers are survivors, counted through their current
-- assignment: a customer whose primary RM is one of $6 counts for that RM; any other
-- counts at its home org (by org_directory's path) when that lies under the tree's
-- root $5. Customers without any figure are left out.
--
-- $1 indicator kind, $2 its code (level or product), $3..$4 the period (days, both
-- included), $5 the root's org path, $6 RM ids with a target in the tree, $7 the level
-- codes counted (at or above the target's level, in the rule in force on $4).
--
-- Figures per customer (amounts in CNY fen, as domain::facts::to_cny converts: the
-- latest rate on or before the fact's day, rounded half away from zero; a fact without
-- a rate is left out):
-- - aum_growth: AUM at the end of $4 minus AUM at the end of $3 - 1; AUM on a day is
--   every account's latest balance on or before it (domain::balances::balance_on),
--   loans excluded, not weighted.
-- - customers_at_level: 1 when its level at the end of $4 (domain::levels::level_on
--   over level_change; before any change, the level it started at) is one of $7 and
--   it had a balance by then.
-- - product_sales: the positive amounts of its transactions of product $2 posted on
--   $3..$4 (UTC days).
-- - new_customers: 1 when created (else first known) on $3..$4 (UTC days).
WITH attributed AS (
    SELECT a.customer_number,
           CASE WHEN a.primary_rm_id = ANY ($6::TEXT[]) THEN a.primary_rm_id END AS rm_id,
           o.path AS org_path
    FROM customer_assignment a
    JOIN customer c ON c.customer_number = a.customer_number AND c.merged_into IS NULL
    LEFT JOIN org_directory o ON o.org_id = a.home_org_id
    WHERE a.primary_rm_id = ANY ($6::TEXT[]) OR starts_with(o.path, $5)
),
aum_growth AS (
    SELECT t.customer_number, sum(edge.sign * b.cny) AS figure
    FROM attributed t
    CROSS JOIN (VALUES (-1, $3::DATE - 1), (1, $4::DATE)) AS edge (sign, day)
    CROSS JOIN LATERAL (
        SELECT CASE
                   WHEN s.currency_code = 'CNY' THEN s.amount_minor::NUMERIC
                   ELSE round(s.amount_minor::NUMERIC
                              * (SELECT r.cny_per_unit_micros FROM fx_rate r
                                 WHERE r.currency_code = s.currency_code AND r.rate_date <= s.balance_date
                                 ORDER BY r.rate_date DESC LIMIT 1)
                              / 1000000)
               END AS cny
        FROM (
            SELECT DISTINCT ON (s.account_id) s.account_id, s.product_code, s.amount_minor, s.currency_code,
                   s.balance_date
            FROM balance_snapshot s
            WHERE s.customer_number = t.customer_number AND s.balance_date <= edge.day
            ORDER BY s.account_id, s.balance_date DESC
        ) s
        JOIN product p ON p.product_code = s.product_code AND p.asset_class <> 'loan'
    ) b
    WHERE $1 = 'aum_growth'
    GROUP BY t.customer_number
),
at_level AS (
    SELECT t.customer_number, 1::NUMERIC AS figure
    FROM attributed t
    JOIN customer_value v ON v.customer_number = t.customer_number
    WHERE $1 = 'customers_at_level'
      AND EXISTS (SELECT 1 FROM balance_snapshot s WHERE s.customer_number = t.customer_number AND s.balance_date <= $4)
      AND COALESCE(
              (SELECT c.to_level FROM level_change c
               WHERE c.customer_number = t.customer_number AND c.effective_date <= $4
               ORDER BY c.effective_date DESC, c.seq DESC LIMIT 1),
              (SELECT c.from_level FROM level_change c WHERE c.customer_number = t.customer_number
               ORDER BY c.seq LIMIT 1),
              v.level_code
          ) = ANY ($7::TEXT[])
),
sales AS (
    SELECT t.customer_number,
           sum(CASE
                   WHEN f.currency_code = 'CNY' THEN f.amount_minor::NUMERIC
                   ELSE round(f.amount_minor::NUMERIC
                              * (SELECT r.cny_per_unit_micros FROM fx_rate r
                                 WHERE r.currency_code = f.currency_code
                                   AND r.rate_date <= (f.posted_at AT TIME ZONE 'UTC')::DATE
                                 ORDER BY r.rate_date DESC LIMIT 1)
                              / 1000000)
               END) AS figure
    FROM attributed t
    JOIN transaction_fact f ON f.customer_number = t.customer_number
    WHERE $1 = 'product_sales'
      AND f.product_code = $2
      AND f.amount_minor > 0
      AND f.posted_at >= ($3::DATE::TIMESTAMP AT TIME ZONE 'UTC')
      AND f.posted_at < (($4::DATE + 1)::TIMESTAMP AT TIME ZONE 'UTC')
    GROUP BY t.customer_number
),
newcomers AS (
    SELECT t.customer_number, 1::NUMERIC AS figure
    FROM attributed t
    JOIN customer c ON c.customer_number = t.customer_number
    WHERE $1 = 'new_customers'
      AND COALESCE(c.created_at, c.known_at) >= ($3::DATE::TIMESTAMP AT TIME ZONE 'UTC')
      AND COALESCE(c.created_at, c.known_at) < (($4::DATE + 1)::TIMESTAMP AT TIME ZONE 'UTC')
),
figures AS (
    SELECT * FROM aum_growth
    UNION ALL SELECT * FROM at_level
    UNION ALL SELECT * FROM sales
    UNION ALL SELECT * FROM newcomers
)
SELECT CASE WHEN t.rm_id IS NULL THEN t.org_path END AS org_path, t.rm_id,
       COALESCE(sum(f.figure), 0)::BIGINT AS value
FROM attributed t
JOIN figures f ON f.customer_number = t.customer_number
WHERE f.figure IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
