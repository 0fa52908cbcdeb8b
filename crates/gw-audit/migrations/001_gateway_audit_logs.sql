-- gw-audit: the gateway_audit_logs table, partitioned by month, with row-level security
-- and a 90-day retention function. `{schema}` is replaced by the configured schema name
-- (a plain lower-case identifier) when `gw_audit::migrate` applies this file; it is
-- idempotent and can run on every start.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.gateway_audit_logs (
    id                  uuid        NOT NULL,
    correlation_id      text        NOT NULL,
    causation_id        text,
    "timestamp"         timestamptz NOT NULL,
    gateway_type        text,
    request_id          text        NOT NULL,
    http_method         text        NOT NULL,
    endpoint            text        NOT NULL,
    query_params        jsonb       NOT NULL DEFAULT '{}',
    request_headers     jsonb       NOT NULL DEFAULT '{}',
    request_body        jsonb,
    user_id             text,
    customer_id         text,
    email               text,
    roles               text[]      NOT NULL DEFAULT '{}',
    trial_mode          boolean     NOT NULL DEFAULT false,
    policies_evaluated  text[]      NOT NULL DEFAULT '{}',
    decisions           jsonb       NOT NULL DEFAULT '[]',
    policy_latency_us   bigint      NOT NULL DEFAULT 0,
    status_code         integer     NOT NULL,
    response_headers    jsonb       NOT NULL DEFAULT '{}',
    error_type          text,
    error_message       text,
    total_latency_us    bigint      NOT NULL,
    upstream_latency_us bigint,
    action              text,
    resource            text,
    resource_id         text,
    response_complete   boolean     NOT NULL DEFAULT true,
    -- A unique key of a partitioned table must include the partition key; ids are
    -- UUIDv7 and a record's timestamp never changes, so (id, timestamp) dedupes retries.
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

CREATE INDEX IF NOT EXISTS gateway_audit_logs_correlation_idx ON {schema}.gateway_audit_logs (correlation_id);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_causation_idx ON {schema}.gateway_audit_logs (causation_id) WHERE causation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS gateway_audit_logs_user_idx ON {schema}.gateway_audit_logs (user_id, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_customer_idx ON {schema}.gateway_audit_logs (customer_id, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_timestamp_idx ON {schema}.gateway_audit_logs ("timestamp" DESC);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_errors_idx ON {schema}.gateway_audit_logs (status_code, "timestamp" DESC) WHERE status_code >= 400;
-- Containment queries on decisions (`decisions @> '[{"outcome":"deny"}]'`, also `@?` and
-- `@@` jsonpath) use this index. The jsonb_path_ops class indexes one hash per path and
-- value instead of every key and value: smaller and cheaper to maintain on every insert,
-- but it does not serve the key-existence operators `?`, `?|` and `?&` on decisions.
-- An earlier version of this file created the default-class index; it is replaced.
DROP INDEX IF EXISTS {schema}.gateway_audit_logs_decisions_idx;
CREATE INDEX IF NOT EXISTS gateway_audit_logs_decisions_path_idx ON {schema}.gateway_audit_logs USING gin (decisions jsonb_path_ops);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_endpoint_idx ON {schema}.gateway_audit_logs (endpoint, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS gateway_audit_logs_gateway_idx ON {schema}.gateway_audit_logs (gateway_type, "timestamp" DESC);

-- Creates the month partition holding `p_at` (UTC months) if missing; returns its name.
-- SECURITY DEFINER, so a writer role with INSERT only can still open a new month.
CREATE OR REPLACE FUNCTION {schema}.gateway_audit_ensure_partition(p_at timestamptz)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    v_start timestamptz := date_trunc('month', p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_name  text := 'gateway_audit_logs_' || to_char(p_at AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(format('%I.%I', '{schema}', v_name)) IS NULL THEN
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %I.gateway_audit_logs FOR VALUES FROM (%L) TO (%L)',
                '{schema}', v_name, '{schema}', v_start, v_start + interval '1 month');
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL; -- created concurrently
        END;
    END IF;
    RETURN v_name;
END
$fn$;

-- Drops month partitions that lie wholly before now() - p_keep and deletes older rows
-- from the partition the cut-off falls into. Returns the number of partitions dropped.
-- Run it daily (pg_cron or the gateway's scheduler) as the table owner.
CREATE OR REPLACE FUNCTION {schema}.gateway_audit_retention(p_keep interval DEFAULT interval '90 days')
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    v_cutoff  timestamptz := now() - p_keep;
    v_dropped integer := 0;
    r         record;
BEGIN
    FOR r IN
        SELECT c.relname,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.gateway_audit_logs'::regclass
    LOOP
        IF r.upper_bound <= v_cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', '{schema}', r.relname);
            v_dropped := v_dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM {schema}.gateway_audit_logs WHERE "timestamp" < v_cutoff;
    RETURN v_dropped;
END
$fn$;

-- Row-level security. Sessions say who they are with transaction-local settings:
--   gw_audit.role        'admin' | 'customer_admin' | 'system' | anything else (a user)
--   gw_audit.user_id     the user's id
--   gw_audit.customer_id the user's customer id
-- The table owner (the migrating role) is not subject to these policies.
ALTER TABLE {schema}.gateway_audit_logs ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS admin_all_access ON {schema}.gateway_audit_logs;
CREATE POLICY admin_all_access ON {schema}.gateway_audit_logs FOR ALL
    USING (current_setting('gw_audit.role', true) = 'admin')
    WITH CHECK (current_setting('gw_audit.role', true) = 'admin');

DROP POLICY IF EXISTS user_own_logs ON {schema}.gateway_audit_logs;
CREATE POLICY user_own_logs ON {schema}.gateway_audit_logs FOR SELECT
    USING (user_id = nullif(current_setting('gw_audit.user_id', true), ''));

DROP POLICY IF EXISTS customer_admin_logs ON {schema}.gateway_audit_logs;
CREATE POLICY customer_admin_logs ON {schema}.gateway_audit_logs FOR SELECT
    USING (current_setting('gw_audit.role', true) = 'customer_admin'
           AND customer_id = nullif(current_setting('gw_audit.customer_id', true), ''));

DROP POLICY IF EXISTS system_insert_logs ON {schema}.gateway_audit_logs;
CREATE POLICY system_insert_logs ON {schema}.gateway_audit_logs FOR INSERT
    WITH CHECK (current_setting('gw_audit.role', true) = 'system');
