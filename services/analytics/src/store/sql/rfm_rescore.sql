-- Rescores every customer's RFM, overall (family '') and per product family (products
-- without a family count overall only), as
-- domain::rfm scores it: over the transactions posted (UTC dates) in the $2 days ending
-- on $1, a customer's recency is days since its last transaction, frequency the count,
-- monetary the sum of absolute amounts in CNY fen at the latest rate on or before the
-- posted date (a transaction without a rate counts in frequency, not in monetary).
-- Each measure scores 1 + ⌊5·k/n⌋ within its population (n customers active in the
-- window; k of them strictly worse: rank() − 1). Only rows that changed are written;
-- answers the customers whose overall scores changed (new, gone or different R, F or M).
WITH before AS (
    SELECT customer_number, r, f, m FROM customer_rfm WHERE family = ''
),
window_tx AS (
    SELECT f.customer_number, p.family, (f.posted_at AT TIME ZONE 'UTC')::DATE AS posted_on,
           abs(cny_fen(f.amount_minor, f.currency_code, (f.posted_at AT TIME ZONE 'UTC')::DATE)) AS cny
    FROM transaction_fact f
    JOIN product p ON p.product_code = f.product_code
    JOIN customer c ON c.customer_number = f.customer_number AND c.merged_into IS NULL
    WHERE f.posted_at >= (($1::DATE - ($2::INTEGER - 1))::TIMESTAMP AT TIME ZONE 'UTC')
      AND f.posted_at < (($1::DATE + 1)::TIMESTAMP AT TIME ZONE 'UTC')
),
activity AS (
    SELECT customer_number, family, ($1::DATE - max(posted_on))::INTEGER AS recency_days,
           count(*)::INTEGER AS frequency, COALESCE(sum(cny), 0)::BIGINT AS monetary_minor
    FROM window_tx WHERE family <> '' GROUP BY customer_number, family
    UNION ALL
    SELECT customer_number, '', ($1::DATE - max(posted_on))::INTEGER,
           count(*)::INTEGER, COALESCE(sum(cny), 0)::BIGINT
    FROM window_tx GROUP BY customer_number
),
scored AS (
    SELECT customer_number, family, recency_days, frequency, monetary_minor,
           (1 + 5 * (rank() OVER (PARTITION BY family ORDER BY recency_days DESC) - 1)
                / count(*) OVER (PARTITION BY family))::SMALLINT AS r,
           (1 + 5 * (rank() OVER (PARTITION BY family ORDER BY frequency) - 1)
                / count(*) OVER (PARTITION BY family))::SMALLINT AS f,
           (1 + 5 * (rank() OVER (PARTITION BY family ORDER BY monetary_minor) - 1)
                / count(*) OVER (PARTITION BY family))::SMALLINT AS m
    FROM activity
),
gone AS (
    DELETE FROM customer_rfm o
    WHERE NOT EXISTS (SELECT 1 FROM scored s WHERE s.customer_number = o.customer_number AND s.family = o.family)
    RETURNING o.customer_number, o.family
),
changed AS (
    INSERT INTO customer_rfm AS o (customer_number, family, scored_on, recency_days, frequency, monetary_minor, r, f, m)
    SELECT customer_number, family, $1::DATE, recency_days, frequency, monetary_minor, r, f, m FROM scored
    ON CONFLICT (customer_number, family) DO UPDATE
        SET scored_on = EXCLUDED.scored_on, recency_days = EXCLUDED.recency_days, frequency = EXCLUDED.frequency,
            monetary_minor = EXCLUDED.monetary_minor, r = EXCLUDED.r, f = EXCLUDED.f, m = EXCLUDED.m
        WHERE (o.scored_on, o.recency_days, o.frequency, o.monetary_minor, o.r, o.f, o.m)
              IS DISTINCT FROM (EXCLUDED.scored_on, EXCLUDED.recency_days, EXCLUDED.frequency,
                                EXCLUDED.monetary_minor, EXCLUDED.r, EXCLUDED.f, EXCLUDED.m)
    RETURNING o.customer_number, o.family
)
SELECT customer_number
FROM (SELECT customer_number, r, f, m FROM scored WHERE family = '') s
FULL JOIN before b USING (customer_number)
WHERE (s.r, s.f, s.m) IS DISTINCT FROM (b.r, b.f, b.m)
ORDER BY customer_number
