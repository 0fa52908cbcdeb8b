-- callback-fsm: jobs and their event ledger.
-- `{schema}` is replaced by the schema given to migrate(); run once per schema.

CREATE TABLE IF NOT EXISTS {schema}.callback_jobs (
    job_id              TEXT        PRIMARY KEY,
    status              TEXT        NOT NULL,
    -- occurred_at of the latest applied event, nanoseconds since the Unix epoch (UTC).
    latest_occurred_ns  BIGINT,
    applied_events      BIGINT      NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.callback_events (
    job_id       TEXT        NOT NULL REFERENCES {schema}.callback_jobs (job_id) ON DELETE CASCADE,
    event_id     TEXT        NOT NULL,
    -- position in the job's history, from 1
    seq          BIGINT      NOT NULL,
    -- SHA-256 of the canonical JSON payload (idempotency fingerprint)
    fingerprint  BYTEA       NOT NULL CHECK (octet_length(fingerprint) = 32),
    from_status  TEXT        NOT NULL,
    to_status    TEXT        NOT NULL,
    occurred_ns  BIGINT      NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    payload      JSONB       NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, event_id),
    UNIQUE (job_id, seq)
);
