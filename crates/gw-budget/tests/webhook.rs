//! The webhook alert sink against a local HTTP listener started by the test.
#![cfg(feature = "webhook")]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::*;
use gw_budget::{BudgetLayer, FlatCost, WebhookAlertSink};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Answers every request with `status` and forwards each (request line, body).
async fn listener(status: u16) -> (String, mpsc::UnboundedReceiver<(String, serde_json::Value)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/budget", l.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed before the request ended");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = String::from_utf8_lossy(&buf[..head_end])
                    .lines()
                    .next()
                    .unwrap()
                    .to_owned();
                let body = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
                let _ = tx.send((line, body));
                let res = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                sock.write_all(res.as_bytes()).await.unwrap();
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn alerts_are_posted_as_json_once_per_threshold() {
    let (url, mut rx) = listener(204).await;
    let svc = service(
        BudgetLayer::in_memory()
            .agent_id(agents())
            .agent_limit(2_000)
            .cost(FlatCost(1_000))
            .alert_sink(WebhookAlertSink::new(url.parse().unwrap())),
        Arc::new(AtomicUsize::new(0)),
    );
    // 50%: nothing. 100%: warning, high, critical. Refused: nothing more.
    for status in [StatusCode::OK, StatusCode::OK, StatusCode::PAYMENT_REQUIRED] {
        assert_eq!(
            call(&svc, req("/api/v1/agents/w1/run")).await.status(),
            status
        );
    }
    let mut levels = Vec::new();
    for _ in 0..3 {
        let (line, body) = rx.recv().await.unwrap();
        assert_eq!(line, "POST /hooks/budget HTTP/1.1");
        assert_eq!(body["scope"], "agent");
        assert_eq!(body["scope_id"], "w1");
        assert_eq!(body["spent"], 2_000);
        assert_eq!(body["limit"], 2_000);
        assert_eq!(body["utilization_percent"], 100.0);
        levels.push(body["level"].as_str().unwrap().to_owned());
    }
    levels.sort();
    assert_eq!(levels, ["critical", "high", "warning"]);
    // Nothing else was sent: one more alert would arrive before this probe's.
    let probe = WebhookAlertSink::new(url.parse().unwrap());
    let alert = gw_budget::BudgetAlert {
        scope: gw_budget::ScopeKind::Platform,
        scope_id: None,
        period: "2026-11".into(),
        level: gw_budget::AlertLevel::Warning,
        threshold_percent: 80.0,
        limit: 10,
        spent: 8,
        utilization_percent: 80.0,
    };
    probe.deliver(&alert).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().1["scope"], "platform");
}

#[tokio::test]
async fn delivery_failures_are_reported() {
    let (url, _rx) = listener(500).await;
    let sink = WebhookAlertSink::new(url.parse().unwrap());
    let alert = gw_budget::BudgetAlert {
        scope: gw_budget::ScopeKind::Agent,
        scope_id: Some("a".into()),
        period: "2026-11-22".into(),
        level: gw_budget::AlertLevel::Critical,
        threshold_percent: 100.0,
        limit: 1,
        spent: 1,
        utilization_percent: 100.0,
    };
    assert_eq!(
        sink.deliver(&alert).await.unwrap_err(),
        "status 500 Internal Server Error"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = WebhookAlertSink::new(format!("http://127.0.0.1:{port}/x").parse().unwrap());
    assert!(down.deliver(&alert).await.is_err());
    assert!(!format!("{down:?}").contains("/x"));
}
