//! The binary COPY of a batch into the session's staging table.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use gw_core::BackendError;
use tokio_postgres::types::{IsNull, Json, ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::{BACKEND, Failed};
use crate::record::AuditRecord;

pub(super) const COLUMNS: &str = "id, correlation_id, causation_id, \"timestamp\", gateway_type, request_id, \
    http_method, endpoint, query_params, request_headers, request_body, user_id, customer_id, \
    email, roles, trial_mode, policies_evaluated, decisions, policy_latency_us, status_code, \
    response_headers, error_type, error_message, total_latency_us, upstream_latency_us, action, \
    resource, resource_id, response_complete";

const TYPES: [Type; 29] = [
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::BOOL,
    Type::TEXT_ARRAY,
    Type::JSONB,
    Type::INT8,
    Type::INT4,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
];

/// The session's staging table. Spelled out rather than `LIKE` the target, which would
/// need `SELECT` on it: the writer role only needs `INSERT`.
pub(super) const STAGING_DDL: &str = "CREATE TEMP TABLE IF NOT EXISTS gw_audit_staging (\
    id uuid, correlation_id text, causation_id text, \"timestamp\" timestamptz, \
    gateway_type text, request_id text, http_method text, endpoint text, \
    query_params jsonb, request_headers jsonb, request_body jsonb, user_id text, \
    customer_id text, email text, roles text[], trial_mode boolean, \
    policies_evaluated text[], decisions jsonb, policy_latency_us bigint, \
    status_code integer, response_headers jsonb, error_type text, error_message text, \
    total_latency_us bigint, upstream_latency_us bigint, action text, resource text, \
    resource_id text, response_complete boolean) ON COMMIT DELETE ROWS";

/// The binary COPY header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The encoded batch goes to the server in messages of about this size (the driver's
/// binary writer sends and flushes every 4 KiB, five rows or so: one socket write each).
const COPY_CHUNK: usize = 256 * 1024;

/// Appends one row in binary COPY format: field count, then each field's length and
/// bytes (-1 for NULL).
fn encode_row(buf: &mut BytesMut, row: &[&(dyn ToSql + Sync)]) -> Result<(), BackendError> {
    buf.put_i16(row.len() as i16);
    for (value, ty) in row.iter().zip(&TYPES) {
        let at = buf.len();
        buf.put_i32(0);
        let len = match value
            .to_sql_checked(ty, buf)
            .map_err(|e| BackendError::invalid(BACKEND, e))?
        {
            IsNull::Yes => -1,
            IsNull::No => i32::try_from(buf.len() - at - 4)
                .map_err(|_| BackendError::invalid(BACKEND, "field over 2 GiB"))?,
        };
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// Appends `r` as one row (see [`COLUMNS`]).
fn encode_record(buf: &mut BytesMut, r: &AuditRecord) -> Result<(), BackendError> {
    let query = Json(&r.query_params);
    let req_headers = Json(&r.request_headers);
    let body = r.request_body.as_ref().map(Json);
    let roles: &[String] = &r.roles;
    let decisions = Json(&r.decisions);
    let res_headers = Json(&r.response_headers);
    let gateway_type = r.gateway_type.as_deref().map(indexed);
    let http_method: &str = &r.http_method;
    let error_type = r.error_type.as_deref();
    let error_message = r.error_message.as_deref();
    let correlation_id = indexed(&r.correlation_id);
    let causation_id = r.causation_id.as_deref().map(indexed);
    let endpoint = indexed(&r.endpoint);
    let (user_id, customer_id, email) = (
        r.user_id.as_deref().map(indexed),
        r.customer_id.as_deref().map(indexed),
        r.email.as_deref(),
    );
    let row: [&(dyn ToSql + Sync); 29] = [
        &r.id,
        &correlation_id,
        &causation_id,
        &r.timestamp,
        &gateway_type,
        &r.request_id,
        &http_method,
        &endpoint,
        &query,
        &req_headers,
        &body,
        &user_id,
        &customer_id,
        &email,
        &roles,
        &r.trial_mode,
        &r.policies_evaluated,
        &decisions,
        &r.policy_latency_us,
        &r.status_code,
        &res_headers,
        &error_type,
        &error_message,
        &r.total_latency_us,
        &r.upstream_latency_us,
        &r.action,
        &r.resource,
        &r.resource_id,
        &r.response_complete,
    ];
    encode_row(buf, &row)
}

/// Copies `batch` into the staging table with the prepared `COPY` statement `copy`.
pub(super) async fn copy_in(
    client: &Client,
    copy: &Statement,
    batch: &[AuditRecord],
) -> Result<(), Failed> {
    let copy = client.copy_in::<_, Bytes>(copy).await?;
    let mut copy = std::pin::pin!(copy);
    // Room for a chunk and the row that overflows it, so the buffer never regrows.
    let room = COPY_CHUNK + 64 * 1024;
    let mut buf = BytesMut::with_capacity(room);
    buf.put_slice(COPY_HEADER);
    for r in batch {
        encode_record(&mut buf, r)?;
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.split().freeze()).await?;
            buf.reserve(room);
        }
    }
    buf.put_i16(-1);
    copy.send(buf.freeze()).await?;
    copy.as_mut().finish().await?;
    Ok(())
}

/// Longest text stored in an indexed column (`endpoint`, `correlation_id`,
/// `causation_id`, `user_id`, `customer_id`, `gateway_type`), in bytes. A B-tree index
/// row holds at most 2704 bytes: a longer value (a client can send a path of any length)
/// would make PostgreSQL refuse the row, and the record would be lost.
pub const MAX_INDEXED_TEXT: usize = 2048;

/// `s` cut to at most [`MAX_INDEXED_TEXT`] bytes, on a character boundary.
fn indexed(s: &str) -> &str {
    if s.len() <= MAX_INDEXED_TEXT {
        return s;
    }
    let mut end = MAX_INDEXED_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_text_is_cut_on_a_character_boundary() {
        assert_eq!(indexed("/a"), "/a");
        let long = format!("/{}", "é".repeat(MAX_INDEXED_TEXT));
        let cut = indexed(&long);
        assert!(cut.len() <= MAX_INDEXED_TEXT && cut.len() >= MAX_INDEXED_TEXT - 1);
        assert!(long.starts_with(cut));
    }
}
