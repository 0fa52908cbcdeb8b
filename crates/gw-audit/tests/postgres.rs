//! The PostgreSQL sink and migration against the local PostgreSQL (`DATABASE_URL`), each
//! test in its own schema.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gw_audit::sink::BoxFuture;
use gw_audit::{
    AuditDecision, AuditLayer, AuditRecord, AuditSink, AuditWriter, HeaderFields, MemorySink,
    PostgresSink, REDACTED, WriterConfig, migrate,
};
use gw_core::{BackendError, Decision, Decisions, ManualClock, Outcome, Principal, PrincipalData};
use gw_problem::ProblemLayer;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio_postgres::types::Json;
use tokio_postgres::{Client, NoTls, Row};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Body = Full<Bytes>;

fn db_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn connect() -> Client {
    let (client, conn) = tokio_postgres::connect(&db_url(), NoTls)
        .await
        .expect("PostgreSQL must be reachable at DATABASE_URL");
    tokio::spawn(conn);
    client
}

/// A fresh schema with the migration applied (twice: it is idempotent).
async fn schema() -> (Client, String) {
    let client = connect().await;
    let name = format!("gwa_{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
    migrate(&client, &name).await.unwrap();
    migrate(&client, &name).await.unwrap();
    (client, name)
}

async fn drop_schema(client: &Client, schema: &str) {
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

fn sink(schema: &str) -> Arc<PostgresSink> {
    Arc::new(PostgresSink::connect_str(&db_url(), schema).unwrap())
}

async fn count(client: &Client, schema: &str) -> (i64, i64) {
    let row = client
        .query_one(
            &format!("SELECT count(*), count(DISTINCT id) FROM {schema}.gateway_audit_logs"),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Writes to both sinks, so the row can be compared with the in-memory record.
struct Tee(MemorySink, Arc<PostgresSink>);

impl AuditSink for Tee {
    fn write<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.1.write(batch).await?;
            self.0.write(batch).await
        })
    }
}

fn from_row(row: &Row) -> AuditRecord {
    let headers = |i: usize| -> HeaderFields {
        serde_json::from_value(row.get::<_, Json<serde_json::Value>>(i).0).unwrap()
    };
    AuditRecord {
        id: row.get(0),
        correlation_id: row.get::<_, String>(1).into(),
        causation_id: row.get::<_, Option<String>>(2).map(Into::into),
        timestamp: row.get(3),
        gateway_type: row.get::<_, Option<String>>(4).map(Into::into),
        request_id: row.get(5),
        http_method: row.get::<_, String>(6).into(),
        endpoint: row.get(7),
        query_params: row.get::<_, Json<serde_json::Value>>(8).0,
        request_headers: headers(9),
        request_body: row
            .get::<_, Option<Json<serde_json::Value>>>(10)
            .map(|j| j.0),
        user_id: row.get::<_, Option<String>>(11).map(Into::into),
        customer_id: row.get::<_, Option<String>>(12).map(Into::into),
        email: row.get::<_, Option<String>>(13).map(Into::into),
        roles: row.get::<_, Vec<String>>(14).into(),
        trial_mode: row.get(15),
        policies_evaluated: row
            .get::<_, Vec<String>>(16)
            .into_iter()
            .map(Into::into)
            .collect(),
        decisions: row.get::<_, Json<Vec<AuditDecision>>>(17).0,
        policy_latency_us: row.get(18),
        status_code: row.get(19),
        response_headers: headers(20),
        error_type: row.get::<_, Option<String>>(21).map(Into::into),
        error_message: row.get::<_, Option<String>>(22).map(Into::into),
        total_latency_us: row.get(23),
        upstream_latency_us: row.get(24),
        action: row.get(25),
        resource: row.get(26),
        resource_id: row.get(27),
        response_complete: row.get(28),
    }
}

const SELECT_ALL: &str = "id, correlation_id, causation_id, \"timestamp\", gateway_type, \
    request_id, http_method, endpoint, query_params, request_headers, request_body, user_id, \
    customer_id, email, roles, trial_mode, policies_evaluated, decisions, policy_latency_us, \
    status_code, response_headers, error_type, error_message, total_latency_us, \
    upstream_latency_us, action, resource, resource_id, response_complete";

async fn handler(mut req: Request<Body>) -> Result<Response<Body>, Infallible> {
    req.extensions_mut().insert(Principal::from(PrincipalData {
        sub: "s".into(),
        user_id: "user-9".into(),
        email: "u9@example.com".into(),
        customer_id: "cust-9".into(),
        roles: Arc::from(vec!["admin".to_owned()]),
        governor_agent_id: None,
        trial: None,
    }));
    Decisions::record(
        req.extensions(),
        Decision::new(
            "budget",
            "agent_daily",
            Outcome::Allow,
            Duration::from_micros(3),
        )
        .reason("within-budget"),
    );
    let mut res = Response::new(Body::from("ok"));
    res.headers_mut()
        .insert("set-cookie", "sid=S3CRET".parse().unwrap());
    Ok(res)
}

#[tokio::test]
async fn records_arrive_with_every_field_and_redaction_holds() {
    let (client, schema) = schema().await;
    let memory = MemorySink::new();
    let writer =
        AuditWriter::spawn(Tee(memory.clone(), sink(&schema)), WriterConfig::new()).unwrap();
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()).clock(Arc::new(ManualClock::at_unix(1_760_000_000))))
        .service(service_fn(handler));
    let req = Request::post("/api/v1/agents?token=S3CRET&x=1")
        .header("authorization", "Bearer S3CRET")
        .header("x-api-key", "S3CRET")
        .header("content-type", "application/json")
        .header("x-request-id", "cause-9")
        .body(Body::from(r#"{"password":"S3CRET","name":"n"}"#))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.flushed, 1);

    let rows = client
        .query(
            &format!("SELECT {SELECT_ALL} FROM {schema}.gateway_audit_logs"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored = from_row(&rows[0]);
    let kept = memory.records();
    assert_eq!(stored, kept[0]);
    assert_eq!(stored.user_id.as_deref(), Some("user-9"));
    assert_eq!(stored.causation_id.as_deref(), Some("cause-9"));
    assert_eq!(stored.decisions[0].reason.as_deref(), Some("within-budget"));
    assert_eq!(
        stored.timestamp,
        UNIX_EPOCH + Duration::from_secs(1_760_000_000)
    );

    let text: String = client
        .query_one(
            &format!("SELECT row_to_json(t)::text FROM {schema}.gateway_audit_logs t"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!text.contains("S3CRET"), "secret stored: {text}");
    assert!(text.contains(REDACTED));
    drop_schema(&client, &schema).await;
}

fn record(user: &str, customer: &str, at: SystemTime) -> AuditRecord {
    let id = uuid::Uuid::now_v7();
    AuditRecord {
        id,
        correlation_id: format!("corr-{id}").into(),
        causation_id: None,
        timestamp: at,
        gateway_type: Some("cp".into()),
        request_id: id.to_string(),
        http_method: "GET".into(),
        endpoint: "/api/v1/agents".into(),
        query_params: serde_json::json!({}),
        request_headers: HeaderFields::default(),
        request_body: None,
        user_id: Some(user.into()),
        customer_id: Some(customer.into()),
        email: None,
        roles: vec!["viewer".into()].into(),
        trial_mode: false,
        policies_evaluated: vec![],
        decisions: Vec::new(),
        policy_latency_us: 0,
        status_code: 200,
        response_headers: HeaderFields::default(),
        error_type: None,
        error_message: None,
        total_latency_us: 10,
        upstream_latency_us: None,
        action: None,
        resource: None,
        resource_id: None,
        response_complete: true,
    }
}

#[tokio::test]
async fn a_retried_batch_leaves_no_duplicates() {
    let (client, schema) = schema().await;
    let sink = sink(&schema);
    let now = SystemTime::now();
    let batch: Vec<_> = (0..50).map(|_| record("u", "c", now)).collect();
    sink.write(&batch[..30]).await.unwrap();
    // The retry of a batch that (unknown to the writer) had been committed, overlapping
    // a new one.
    sink.write(&batch).await.unwrap();
    sink.write(&batch[20..]).await.unwrap();
    assert_eq!(count(&client, &schema).await, (50, 50));
    drop_schema(&client, &schema).await;
}

/// A cluster-wide role for RLS checks: stable name, created if missing, never dropped
/// (other test runs may use it concurrently).
const APP_ROLE: &str = "gw_audit_rls_tester";

async fn app_role(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {APP_ROLE} NOLOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE};
             GRANT SELECT, INSERT, DELETE ON {schema}.gateway_audit_logs TO {APP_ROLE};"
        ))
        .await
        .unwrap();
}

/// Runs `sql` as the application role with the given session identity.
async fn as_app(
    client: &mut Client,
    role: &str,
    user: &str,
    customer: &str,
    sql: &str,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL ROLE {APP_ROLE}"))
        .await?;
    for (k, v) in [
        ("gw_audit.role", role),
        ("gw_audit.user_id", user),
        ("gw_audit.customer_id", customer),
    ] {
        tx.execute("SELECT set_config($1, $2, true)", &[&k, &v])
            .await?;
    }
    let rows = tx.query(sql, &[]).await?;
    tx.commit().await?;
    Ok(rows)
}

#[tokio::test]
async fn row_level_security_for_admin_user_customer_admin_and_system() {
    let (mut client, schema) = schema().await;
    app_role(&client, &schema).await;
    let now = SystemTime::now();
    let rows = [
        record("alice", "acme", now),
        record("bob", "acme", now),
        record("carol", "globex", now),
    ];
    sink(&schema).write(&rows).await.unwrap();

    let users = |rows: Vec<Row>| -> Vec<String> {
        let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        v.sort();
        v
    };
    let select = format!("SELECT user_id FROM {schema}.gateway_audit_logs");

    let admin = as_app(&mut client, "admin", "", "", &select).await.unwrap();
    assert_eq!(users(admin), ["alice", "bob", "carol"]);
    let own = as_app(&mut client, "user", "bob", "acme", &select)
        .await
        .unwrap();
    assert_eq!(users(own), ["bob"]);
    let cust = as_app(&mut client, "customer_admin", "alice", "acme", &select)
        .await
        .unwrap();
    assert_eq!(users(cust), ["alice", "bob"]);
    let nobody = as_app(&mut client, "", "", "", &select).await.unwrap();
    assert!(nobody.is_empty());
    // A user cannot see another customer's rows by claiming customer_admin's customer
    // without the role.
    let spoof = as_app(&mut client, "user", "mallory", "acme", &select)
        .await
        .unwrap();
    assert!(spoof.is_empty());

    // Only the system role inserts (and a retried insert is a no-op for it too).
    let id = uuid::Uuid::now_v7();
    let insert = format!(
        "INSERT INTO {schema}.gateway_audit_logs (id, correlation_id, \"timestamp\", request_id, \
         http_method, endpoint, status_code, total_latency_us, user_id) \
         VALUES ('{id}', 'c', '2026-01-01T00:00:00Z', 'r', 'GET', '/', 200, 1, 'dave') \
         ON CONFLICT DO NOTHING"
    );
    client
        .execute(
            &format!("SELECT {schema}.gateway_audit_ensure_partition('2026-01-01T00:00:00Z')"),
            &[],
        )
        .await
        .unwrap();
    let denied = as_app(&mut client, "user", "dave", "acme", &insert).await;
    let denied = denied.unwrap_err();
    let message = denied
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("row-level security"), "{denied:?}");
    as_app(&mut client, "system", "", "", &insert)
        .await
        .unwrap();
    as_app(&mut client, "system", "", "", &insert)
        .await
        .unwrap();
    // The system role writes but does not read.
    let system_reads = as_app(&mut client, "system", "", "", &select)
        .await
        .unwrap();
    assert!(system_reads.is_empty());
    assert_eq!(count(&client, &schema).await, (4, 4));

    // Users cannot delete, admins can.
    let delete =
        format!("DELETE FROM {schema}.gateway_audit_logs WHERE user_id = 'dave' RETURNING user_id");
    assert!(
        as_app(&mut client, "user", "dave", "acme", &delete)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        as_app(&mut client, "admin", "", "", &delete)
            .await
            .unwrap()
            .len(),
        1
    );
    drop_schema(&client, &schema).await;
}

#[tokio::test]
async fn an_outage_during_n_requests_ends_with_exactly_n_rows() {
    const N: usize = 60;
    let (client, schema) = schema().await;
    // Nothing listens on port 1: every connection attempt is refused.
    let sink = Arc::new(
        PostgresSink::connect_str("postgres://postgres@127.0.0.1:1/test", &schema).unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("gw-audit-pg-{schema}"));
    let config = WriterConfig::new()
        .batch_size(10)
        .flush_interval(Duration::from_millis(20))
        .retry(2, Duration::from_millis(5), Duration::from_millis(20))
        .probe_interval(Duration::from_millis(20))
        .spool_dir(&dir);
    let writer = AuditWriter::spawn(sink.clone(), config).unwrap();
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(handler));
    for n in 0..N {
        let req = Request::get(format!("/api/v1/agents/{n}"))
            .body(Body::default())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    wait(|| writer.stats().spooled as usize == N).await;
    assert_eq!(count(&client, &schema).await, (0, 0));
    assert!(writer.stats().retried > 0);

    // The database is back.
    sink.set_config(db_url().parse().unwrap());
    let mut rows = (0, 0);
    for _ in 0..1000 {
        rows = count(&client, &schema).await;
        if rows.0 as usize >= N && writer.spool_segments() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.dropped, 0);
    assert_eq!(
        count(&client, &schema).await,
        (N as i64, N as i64),
        "after {rows:?}"
    );
    let paths: HashSet<String> = client
        .query(
            &format!("SELECT endpoint FROM {schema}.gateway_audit_logs"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(paths.len(), N);
    assert_eq!(writer.spool_segments(), 0);
    std::fs::remove_dir_all(dir).unwrap();
    drop_schema(&client, &schema).await;
}

/// A cluster-wide login role that may only insert: the sink's SQL must work for it under
/// row-level security (stable name, created if missing, never dropped).
const WRITER_ROLE: &str = "gw_audit_rls_writer";

#[tokio::test]
async fn an_insert_only_writer_role_works_under_row_level_security() {
    let (client, schema) = schema().await;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {WRITER_ROLE} LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT USAGE ON SCHEMA {schema} TO {WRITER_ROLE};
             GRANT INSERT ON {schema}.gateway_audit_logs TO {WRITER_ROLE};"
        ))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = db_url().parse().unwrap();
    config.user(WRITER_ROLE);
    let sink = PostgresSink::new(config, &schema).unwrap();
    let now = SystemTime::now();
    // One record three months ahead: its partition is created through the
    // SECURITY DEFINER function, which this role may call but could not do itself.
    let batch = [
        record("alice", "acme", now),
        record("bob", "acme", now + Duration::from_secs(90 * 86_400)),
    ];
    sink.write(&batch).await.unwrap();
    sink.write(&batch).await.unwrap();
    assert_eq!(count(&client, &schema).await, (2, 2));
    drop_schema(&client, &schema).await;
}

async fn wait(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn retention_drops_old_partitions_and_rows() {
    let (client, schema) = schema().await;
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let batch = [
        record("old", "c", now - day * 200),
        record("edge", "c", now - day * 91),
        record("recent", "c", now - day * 10),
        record("now", "c", now),
    ];
    sink(&schema).write(&batch).await.unwrap();
    let dropped: i32 = client
        .query_one(&format!("SELECT {schema}.gateway_audit_retention()"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(dropped >= 1, "the 200-day-old month partition is dropped");
    let left: Vec<String> = client
        .query(
            &format!("SELECT user_id FROM {schema}.gateway_audit_logs ORDER BY \"timestamp\""),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["recent", "now"]);
    drop_schema(&client, &schema).await;
}

#[tokio::test]
async fn swapping_the_target_replaces_an_established_connection() {
    let (client, schema) = schema().await;
    let sink = sink(&schema);
    let now = SystemTime::now();
    sink.write(&[record("a", "c", now)]).await.unwrap();
    sink.set_config("postgres://postgres@127.0.0.1:1/test".parse().unwrap());
    assert!(sink.write(&[record("b", "c", now)]).await.is_err());
    sink.set_config(db_url().parse().unwrap());
    sink.write(&[record("c", "c", now)]).await.unwrap();
    assert_eq!(count(&client, &schema).await, (2, 2));
    drop_schema(&client, &schema).await;
}

#[tokio::test]
async fn unsafe_schema_names_are_refused() {
    let client = connect().await;
    assert!(migrate(&client, "x; DROP TABLE y").await.is_err());
    assert!(PostgresSink::connect_str(&db_url(), "Bad-Name").is_err());
}

#[tokio::test]
async fn concurrent_batches_on_several_connections_leave_no_duplicates() {
    let (client, schema) = schema().await;
    let mut target: tokio_postgres::Config = db_url().parse().unwrap();
    target.application_name(&schema);
    let sink = Arc::new(PostgresSink::new(target, &schema).unwrap());
    let config = WriterConfig::new()
        .batch_size(20)
        .max_batch(50)
        .concurrency(3)
        .flush_interval(Duration::from_secs(3600));
    let writer = AuditWriter::spawn(sink.clone(), config).unwrap();
    let now = SystemTime::now();
    let records: Vec<_> = (0..300).map(|_| record("u", "c", now)).collect();
    // Every record twice, as replays of batches that were committed would send them.
    for r in records.iter().chain(&records) {
        writer.push(r.clone());
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.totals.written, 600);
    assert_eq!(report.dropped, 0);
    assert_eq!(count(&client, &schema).await, (300, 300));
    // The backlog was written three batches at a time, each on its own connection; they
    // stay open for the next batches.
    let connections: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(connections, 3);
    drop(sink);
    drop_schema(&client, &schema).await;
}

/// `%00` in a query and `\u0000` in a JSON body (PostgreSQL's `jsonb` refuses U+0000)
/// are stored as U+FFFD: the batch they share with other requests is written whole, and
/// nothing is spooled.
#[tokio::test]
async fn a_nul_in_a_query_or_body_is_stored_replaced_and_spoils_no_batch() {
    let (client, schema) = schema().await;
    let dir = std::env::temp_dir().join(format!("gw-audit-pg-nul-{schema}"));
    let writer = AuditWriter::spawn(
        sink(&schema),
        WriterConfig::new()
            .batch_size(10)
            .flush_interval(Duration::from_millis(20))
            .retry(1, Duration::from_millis(5), Duration::from_millis(20))
            .probe_interval(Duration::from_millis(20))
            .spool_dir(&dir),
    )
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(AuditLayer::new(writer.clone()))
        .service(service_fn(handler));
    for n in 0..10 {
        let req = match n {
            4 => Request::get("/api/v1/agents?q=%00&%00=1").body(Body::default()),
            5 => Request::post("/api/v1/agents")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"a":"x\u0000","b\u0000":["\u0000"]}"#)),
            _ => Request::get(format!("/api/v1/agents/{n}")).body(Body::default()),
        };
        let res = svc.clone().oneshot(req.unwrap()).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (
            report.totals.written,
            report.totals.spooled,
            report.totals.dropped
        ),
        (10, 0, 0),
        "{report:?}"
    );
    assert_eq!(count(&client, &schema).await, (10, 10));
    let row = client
        .query_one(
            &format!(
                "SELECT query_params::text FROM {schema}.gateway_audit_logs \
                 WHERE query_params ? 'q'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), r#"{"q": "�", "�": "1"}"#);
    let row = client
        .query_one(
            &format!(
                "SELECT request_body::text FROM {schema}.gateway_audit_logs \
                 WHERE request_body IS NOT NULL"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), r#"{"a": "x�", "b�": ["�"]}"#);
    drop_schema(&client, &schema).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A row PostgreSQL refuses for its data is an `invalid` error (the writer isolates it),
/// not an outage; the connection keeps working.
#[tokio::test]
async fn rows_refused_for_their_data_are_an_invalid_error() {
    let (client, schema) = schema().await;
    let sink = sink(&schema);
    let now = SystemTime::now();
    // Straight to the sink: the writer would have replaced the NUL.
    let mut poisoned = record("u", "c", now);
    poisoned.query_params = serde_json::json!({"q": "\u{0}"});
    let good = record("u", "c", now);
    let e = sink
        .write(&[good.clone(), poisoned])
        .await
        .expect_err("jsonb refuses U+0000");
    assert_eq!(e.kind, gw_core::BackendErrorKind::Invalid, "{e}");
    assert!(e.message.contains("22P05"), "{e}");
    sink.write(&[good]).await.unwrap();
    assert_eq!(count(&client, &schema).await, (1, 1));
    drop_schema(&client, &schema).await;
}

/// A month partition dropped while the sink knew it (retention, by hand) is created
/// again by the same write: a batch of one record into it is written, not refused.
#[tokio::test]
async fn a_single_record_into_a_dropped_month_partition_is_written() {
    let (client, schema) = schema().await;
    let sink = sink(&schema);
    let now = SystemTime::now();
    sink.write(&[record("a", "c", now)]).await.unwrap();
    let partition: String = client
        .query_one(
            &format!("SELECT {schema}.gateway_audit_ensure_partition($1)"),
            &[&now],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("DROP TABLE {schema}.{partition}"))
        .await
        .unwrap();
    sink.write(&[record("b", "c", now)]).await.unwrap();
    assert_eq!(count(&client, &schema).await, (1, 1));
    drop_schema(&client, &schema).await;
}

/// A path longer than a B-tree index row may be (PostgreSQL refuses such a row with
/// 54000) is stored cut to `MAX_INDEXED_TEXT` bytes, not lost.
#[tokio::test]
async fn an_overlong_endpoint_is_stored_cut_to_what_the_index_holds() {
    use gw_audit::sink::MAX_INDEXED_TEXT;
    let (client, schema) = schema().await;
    let sink = sink(&schema);
    let mut r = record("u", "c", SystemTime::now());
    // Random hex: incompressible enough that the index cannot squeeze it under its
    // limit (a UUIDv7 list, with its shared prefixes, would compress).
    r.endpoint = (0..400u64)
        .map(|i| {
            use std::hash::{BuildHasher, RandomState};
            format!("{:016x}", RandomState::new().hash_one(i))
        })
        .collect::<Vec<_>>()
        .concat();
    r.endpoint.insert(0, '/');
    sink.write(std::slice::from_ref(&r)).await.unwrap();
    let row = client
        .query_one(
            &format!("SELECT endpoint FROM {schema}.gateway_audit_logs"),
            &[],
        )
        .await
        .unwrap();
    let stored: String = row.get(0);
    assert_eq!(stored, r.endpoint[..MAX_INDEXED_TEXT]);
    drop_schema(&client, &schema).await;
}
