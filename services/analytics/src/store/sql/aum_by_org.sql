-- GetAumByOrg: visible valued customers grouped by the child org of the root whose
-- subtree holds their home org (the root's own customers under the root) and by level,
-- with their amounts per asset class. Either a closed month ($3, with $6 NULL): the
-- month's rows of customer_month_value; or a day ($6): each holding's latest balance on
-- or before it that has a rate (CNY fen at the latest rate on or before the balance
-- date, rounded half away from zero, as store::valuation reads holdings) and the level
-- on that day. $1: root org id ('' for the whole tree); $2: its path ('/' for the whole
-- tree); $4, $5: the caller's data scope (customer_visible). Customers whose home org
-- is neither the root nor in the copy of the org tree under it are left out.
WITH converted AS (
    SELECT b.customer_number, b.account_id, b.product_code, b.balance_date,
           CASE
               WHEN b.currency_code = 'CNY' THEN b.amount_minor::NUMERIC
               ELSE round(b.amount_minor::NUMERIC
                          * (SELECT r.cny_per_unit_micros FROM fx_rate r
                             WHERE r.currency_code = b.currency_code AND r.rate_date <= b.balance_date
                             ORDER BY r.rate_date DESC LIMIT 1)
                          / 1000000)
           END AS cny
    FROM balance_snapshot b
    WHERE $6::DATE IS NOT NULL AND b.customer_number IS NOT NULL AND b.balance_date <= $6::DATE
), latest AS (
    SELECT DISTINCT ON (c.customer_number, c.account_id, c.product_code) c.customer_number, c.product_code, c.cny
    FROM converted c
    WHERE c.cny IS NOT NULL
    ORDER BY c.customer_number, c.account_id, c.product_code, c.balance_date DESC
), amounts AS (
    SELECT m.customer_number, m.level_code, m.deposit, m.wealth_management, m.settlement, m.loan,
           m.channel_product, m.aum_total
    FROM customer_month_value m
    WHERE $6::DATE IS NULL AND m.month = $3
    UNION ALL
    SELECT l.customer_number, customer_level_on(l.customer_number, $6::DATE),
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class = 'deposit'), 0)::BIGINT,
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class = 'wealth_management'), 0)::BIGINT,
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class = 'settlement'), 0)::BIGINT,
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class = 'loan'), 0)::BIGINT,
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class = 'channel_product'), 0)::BIGINT,
           COALESCE(sum(l.cny) FILTER (WHERE p.asset_class <> 'loan'), 0)::BIGINT
    FROM latest l
    JOIN product p USING (product_code)
    JOIN customer_value v USING (customer_number)
    GROUP BY l.customer_number
)
SELECT g.org_id, x.level_code, count(*)::BIGINT AS customer_count,
       sum(x.deposit)::BIGINT AS deposit, sum(x.wealth_management)::BIGINT AS wealth_management,
       sum(x.settlement)::BIGINT AS settlement, sum(x.loan)::BIGINT AS loan,
       sum(x.channel_product)::BIGINT AS channel_product, sum(x.aum_total)::BIGINT AS aum_total
FROM amounts x
JOIN customer_assignment a USING (customer_number)
LEFT JOIN org_directory o ON o.org_id = a.home_org_id
CROSS JOIN LATERAL (
    SELECT CASE
               WHEN a.home_org_id = $1 THEN $1
               WHEN starts_with(o.path, $2) AND o.path <> $2 THEN split_part(substr(o.path, length($2) + 1), '/', 1)
           END AS org_id
) g
WHERE g.org_id IS NOT NULL AND customer_visible(x.customer_number, $4, $5)
GROUP BY g.org_id, x.level_code
ORDER BY g.org_id, x.level_code
