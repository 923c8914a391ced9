-- `surviving_party` again, same answer, written in PL/pgSQL. As a SQL function holding a
-- recursive query it could not be inlined, so PostgreSQL parsed and planned its body on
-- every execution of every statement calling it (~0.3–0.4 ms each, measured with
-- pgbench): enough to saturate the 360° view at 1,000 calls/s. PL/pgSQL keeps the plan
-- of its one look-up for the session, and walks the chain a party at a time (chains are
-- short: a merge re-points absorbed parties at the survivor).
CREATE OR REPLACE FUNCTION surviving_party(p_party_id BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    current BIGINT := p_party_id;
    next_id BIGINT;
BEGIN
    -- At most 64 steps, as before: a longer chain (or a cycle) resolves to nothing.
    FOR step IN 0..64 LOOP
        SELECT merged_into INTO next_id FROM party WHERE party_id = current;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF next_id IS NULL THEN
            RETURN current;
        END IF;
        current := next_id;
    END LOOP;
    RETURN NULL;
END
$$;
