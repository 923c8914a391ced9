-- The daily balance file (`analytics load-balances`): progress per file (by content
-- checksum) so that an interrupted load resumes after the last committed line, and the
-- lines it rejected; the tables the kit's file load (crm_platform::file_load) reads and
-- writes.
CREATE TABLE file_load (
    load_id     BIGSERIAL   PRIMARY KEY,
    file_name   TEXT        NOT NULL,
    file_sha256 TEXT        NOT NULL UNIQUE,
    lines_done  BIGINT      NOT NULL DEFAULT 0,
    accepted    BIGINT      NOT NULL DEFAULT 0,
    rejected    BIGINT      NOT NULL DEFAULT 0,
    status      TEXT        NOT NULL DEFAULT 'LOADING' CHECK (status IN ('LOADING', 'DONE')),
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);

CREATE TABLE file_load_rejection (
    load_id BIGINT NOT NULL REFERENCES file_load (load_id),
    line_no BIGINT NOT NULL,
    reason  TEXT   NOT NULL,
    PRIMARY KEY (load_id, line_no)
);
