"""DuckDB baseline for the customer value benchmark (benches/value.rs).

Reads the raw rows the service was fed (balances.tsv, transactions.tsv in the directory
given), computes the January 2026 daily-average AUM per customer and asset class and the
overall RFM codes over the 365 days ending on the data date, by the service's rules
(sum of the month's day-end balances / days in the month, rounded half away from zero;
quintile score 1 + floor(5 * k / n), k = customers strictly worse, recency reversed),
writes month_aum.tsv and rfm.tsv, and prints the seconds spent (load + compute).
"""
import sys
import time

import duckdb

directory = sys.argv[1]
start = time.perf_counter()
con = duckdb.connect()
con.execute(f"""
CREATE TABLE balance AS SELECT * FROM read_csv('{directory}/balances.tsv', delim='\t', header=false,
    columns={{'account_id': 'VARCHAR', 'customer_number': 'VARCHAR', 'product_code': 'VARCHAR',
              'asset_class': 'VARCHAR', 'amount_minor': 'BIGINT', 'currency_code': 'VARCHAR',
              'balance_date': 'DATE'}})
""")
con.execute(f"""
CREATE TABLE txn AS SELECT * FROM read_csv('{directory}/transactions.tsv', delim='\t', header=false,
    columns={{'transaction_id': 'VARCHAR', 'customer_number': 'VARCHAR', 'product_code': 'VARCHAR',
              'family': 'VARCHAR', 'amount_minor': 'BIGINT', 'currency_code': 'VARCHAR',
              'posted_at': 'TIMESTAMPTZ'}})
""")
con.execute("SET TimeZone = 'UTC'")
month_aum = con.execute("""
SELECT customer_number, asset_class,
       CAST(round(CAST(sum(amount_minor) AS DECIMAL(38, 4)) / 31, 0) AS BIGINT) AS daily_average
FROM balance
WHERE balance_date BETWEEN DATE '2026-01-01' AND DATE '2026-01-31'
GROUP BY customer_number, asset_class
""").fetchall()
rfm = con.execute("""
WITH d AS (
    SELECT greatest((SELECT max(balance_date) FROM balance),
                    (SELECT max(CAST(posted_at AS DATE)) FROM txn)) AS day
),
activity AS (
    SELECT customer_number,
           (SELECT day FROM d) - max(CAST(posted_at AS DATE)) AS recency_days,
           count(*) AS frequency,
           sum(abs(amount_minor)) AS monetary
    FROM txn
    WHERE CAST(posted_at AS DATE) BETWEEN (SELECT day FROM d) - 364 AND (SELECT day FROM d)
    GROUP BY customer_number
)
SELECT customer_number,
       (1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1)) // count(*) OVER ()) * 100
     + (1 + (5 * (rank() OVER (ORDER BY frequency) - 1)) // count(*) OVER ()) * 10
     + (1 + (5 * (rank() OVER (ORDER BY monetary) - 1)) // count(*) OVER ()) AS code
FROM activity
""").fetchall()
elapsed = time.perf_counter() - start
with open(f"{directory}/month_aum.tsv", "w") as out:
    for number, asset_class, amount in month_aum:
        out.write(f"{number}\t{asset_class}\t{amount}\n")
with open(f"{directory}/rfm.tsv", "w") as out:
    for number, code in rfm:
        out.write(f"{number}\t{code}\n")
print(f"{elapsed:.3f}")
