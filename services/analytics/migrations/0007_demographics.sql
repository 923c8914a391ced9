-- analytics: each customer's demographic attributes as customer-profile's golden
-- record announces them (CustomerCreated / CustomerUpdated carry them), for tag and
-- segment conditions (`age`, `gender`, `region`). `announced_at` is the event's time:
-- an older announcement arriving late does not overwrite a newer one.
-- (0005 is business targets, 0006 analysis.)
CREATE TABLE customer_demographics (
    customer_number TEXT PRIMARY KEY REFERENCES customer (customer_number),
    birth_date      DATE,
    gender          TEXT CHECK (gender IN ('M', 'F', 'U')),
    region_code     TEXT CHECK (region_code ~ '^[0-9]{6}$'),
    announced_at    TIMESTAMPTZ NOT NULL
);
