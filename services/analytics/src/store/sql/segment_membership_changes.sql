-- The entries into and exits from one segment in a time range, oldest first (then by
-- customer, entries before exits), a page at an offset. $1: segment code; $2, $3: the
-- range [start, end), either NULL for unbounded; $4: limit; $5: offset.
SELECT segment_code, customer_number, kind, at, segment_version
FROM (
    SELECT segment_code, customer_number, 'entered' AS kind, entered_at AS at, entered_version AS segment_version
    FROM segment_membership
    WHERE segment_code = $1
      AND ($2::TIMESTAMPTZ IS NULL OR entered_at >= $2) AND ($3::TIMESTAMPTZ IS NULL OR entered_at < $3)
    UNION ALL
    SELECT segment_code, customer_number, 'left', left_at, left_version
    FROM segment_membership
    WHERE segment_code = $1 AND left_at IS NOT NULL
      AND ($2::TIMESTAMPTZ IS NULL OR left_at >= $2) AND ($3::TIMESTAMPTZ IS NULL OR left_at < $3)
) c
ORDER BY at, customer_number, kind
LIMIT $4 OFFSET $5
