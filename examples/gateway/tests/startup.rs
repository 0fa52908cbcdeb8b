//! Start-up: configuration the gateway refuses, and the warnings it logs when it starts in
//! a weaker position than an operator may assume.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use gateway::{Config, build};
use http::Request;
use svc_hmac::Mode;
use tower::ServiceExt;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines written while a future runs (current-thread runtime: everything it does, and
/// every task it spawns, logs on this thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

async fn logged<F: Future>(f: F) -> (F::Output, String) {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    drop(guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// Whether `logs` has a WARN line containing `text`.
fn warned(logs: &str, text: &str) -> bool {
    logs.lines()
        .any(|l| l.contains(" WARN ") && l.contains(text))
}

/// Runs the gateway binary with only `env`, and returns its exit code and stderr; fails
/// if it is still running after 30 s (it started instead of refusing).
fn run_binary(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let env: Vec<(OsString, OsString)> = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    run_binary_os(&env)
}

/// [`run_binary`] with variables that need not be UTF-8.
fn run_binary_os(env: &[(OsString, OsString)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the gateway started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unparsable_enforcement_mode_refuses_to_start() {
    for value in ["", "enforced", "Enforce!"] {
        let (code, stderr) = run_binary(&[("SERVICE_AUTH_ENFORCEMENT_MODE", value)]);
        assert_eq!(code, Some(2), "{value:?}: {stderr}");
        assert!(
            stderr.contains("SERVICE_AUTH_ENFORCEMENT_MODE: unknown service auth mode"),
            "{value:?}: {stderr}"
        );
    }
}

async fn anonymous_service_only_call(config: &Config) -> u16 {
    let gw = build(config, None).await.unwrap();
    let res = gw
        .service
        .oneshot(
            Request::get("/api/npu/jobs")
                .header("x-service-id", "billing")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    res.status().as_u16()
}

#[tokio::test]
async fn a_cap_below_enforce_warns_that_service_only_routes_are_open() {
    const WARNING: &str = "caps the service-only routes below enforce";
    for (cap, open) in [
        (Some(Mode::LogOnly), true),
        (Some(Mode::Off), true),
        (Some(Mode::Enforce), false),
        (None, false),
    ] {
        let mut config = Config::default();
        config.service_auth.enforcement_cap = cap;
        let (status, logs) = logged(anonymous_service_only_call(&config)).await;
        // The documented rollback: the cap really opens the routes, so it must be loud.
        assert_eq!(status, if open { 200 } else { 401 }, "{cap:?}");
        assert_eq!(logs.contains(WARNING), open, "{cap:?}: {logs}");
        if open {
            assert!(warned(&logs, WARNING), "{logs}");
            assert!(warned(&logs, "accept unsigned requests"), "{logs}");
            assert!(warned(&logs, "/api/npu/*"), "{logs}");
        }
    }
    // No service-only routes: nothing to warn about.
    let mut config = Config::default();
    config.service_auth.enforcement_cap = Some(Mode::LogOnly);
    config.service_auth.service_only.clear();
    let (_, logs) = logged(build(&config, None)).await;
    assert!(!logs.contains(WARNING), "{logs}");
}

#[test]
fn unknown_gw_variable_refuses_to_start() {
    let (code, stderr) = run_binary(&[("GW_CALLBACK_SECRET", "0123456789abcdef0123456789abcdef")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown environment variable GW_CALLBACK_SECRET"),
        "{stderr}"
    );
    assert!(!stderr.contains("0123456789abcdef"), "{stderr}");
}

#[test]
fn a_variable_that_is_not_utf8_is_refused_only_if_the_gateway_reads_it() {
    let latin1 = || OsString::from_vec(b"caf\xe9".to_vec());
    // One the gateway reads: refused by name, no panic.
    let (code, stderr) = run_binary_os(&[("GW_REDIS_PREFIX".into(), latin1())]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("GW_REDIS_PREFIX: not valid UTF-8"),
        "{stderr}"
    );
    // Any other is skipped: the gateway goes on to refuse the unknown GW_ variable.
    let (code, stderr) = run_binary_os(&[
        ("LANG_OLD".into(), latin1()),
        ("GW_CALLBACK_SECRET".into(), "x".into()),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown environment variable GW_CALLBACK_SECRET"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_demo_upstream_is_announced_as_a_warning() {
    const WARNING: &str = "requests go to the built-in demo upstream";
    let (gw, logs) = logged(build(&Config::default(), None)).await;
    assert!(gw.unwrap().upstream.starts_with("http://127.0.0.1:"));
    assert!(warned(&logs, WARNING), "{logs}");

    let mut config = Config::default();
    config.upstream.production_url = Some("http://127.0.0.1:9".into());
    let (gw, logs) = logged(build(&config, None)).await;
    assert_eq!(gw.unwrap().upstream, "http://127.0.0.1:9");
    assert!(!logs.contains(WARNING), "{logs}");
}

#[tokio::test]
async fn an_exempt_route_over_a_service_only_route_refuses_to_start() {
    // Exempt wins over every group in svc-hmac, and the service-only routes skip JWT and
    // RBAC: an overlapping exemption would open them to anyone.
    for exempt in [
        "/api/*",
        "/api/npu/status",
        "/*",
        "GET /api/{x}/status",
        "/api/npu",
    ] {
        let mut config = Config::default();
        config.service_auth.exempt = vec!["/docs/*".into(), exempt.into()];
        let err = build(&config, None).await.err().expect(exempt);
        assert!(err.starts_with("service_auth.exempt: "), "{err}");
        assert!(err.contains(&format!("{exempt:?}")), "{exempt}: {err}");
        assert!(err.contains("\"/api/npu/*\""), "{err}");
        assert!(
            err.contains("remove it from service_auth.service_only"),
            "{err}"
        );
        assert!(!err.contains("/docs/*"), "{err}");
    }
    // Routes that share no request with /api/npu/* are fine, and the service-only route
    // stays closed to an unsigned caller.
    let mut config = Config::default();
    config.service_auth.exempt = vec![
        "/api/chats/*".into(),
        "/api/npux/*".into(),
        "GET /api/chatsx/{x}".into(),
        "/api".into(),
    ];
    assert_eq!(anonymous_service_only_call(&config).await, 401);
}

#[tokio::test]
async fn a_log_only_group_over_a_service_only_route_warns() {
    const WARNING: &str = "log_only groups overlap service-only routes";
    let mut config = Config::default();
    config.service_auth.log_only = vec!["/api/npu/jobs".into()];
    let (status, logs) = logged(anonymous_service_only_call(&config)).await;
    // A staged rollout: the route really is open, so the start says so.
    assert_eq!(status, 200);
    assert!(warned(&logs, WARNING), "{logs}");
    assert!(warned(&logs, "accept unsigned requests"), "{logs}");
    assert!(warned(&logs, "/api/npu/jobs"), "{logs}");
    assert!(warned(&logs, "/api/npu/*"), "{logs}");
    // No overlap, no warning; a default_mode below enforce never reaches a service-only
    // route (it applies outside every group), so it does not warn either.
    let mut config = Config::default();
    config.service_auth.log_only = vec!["/api/browser/*".into()];
    config.service_auth.default_mode = "off".into();
    let (status, logs) = logged(anonymous_service_only_call(&config)).await;
    assert_eq!(status, 401);
    assert!(!logs.contains(WARNING), "{logs}");
}

#[tokio::test]
async fn an_invalid_service_auth_route_is_an_error_not_a_panic() {
    for (field, bad) in [
        ("service_auth.exempt", "api/x"),
        ("service_auth.log_only", "/api/*/x"),
        ("service_auth.service_only", "/api/{a-b}"),
    ] {
        let mut config = Config::default();
        match field {
            "service_auth.exempt" => config.service_auth.exempt = vec![bad.into()],
            "service_auth.log_only" => config.service_auth.log_only = vec![bad.into()],
            _ => config.service_auth.service_only = vec![bad.into()],
        }
        let r = tokio::spawn(async move { build(&config, None).await.err() }).await;
        let err = r.expect("panicked").expect(bad);
        assert!(err.starts_with(&format!("{field}: ")), "{err}");
        assert!(err.contains(bad), "{err}");
    }
}
