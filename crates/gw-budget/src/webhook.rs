//! [`WebhookAlertSink`]: alerts as JSON POSTs (Slack-style incoming webhooks, pagers).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::alert::{AlertSink, BudgetAlert};

/// Sends each alert as a JSON POST (the [`BudgetAlert`] fields) to a URL, in a background
/// task with a timeout; failures are logged and counted (`gw_budget_webhook_errors_total`),
/// never retried. Plain `http://` only (put a TLS-terminating relay in front for https).
#[derive(Clone)]
pub struct WebhookAlertSink {
    uri: Uri,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for WebhookAlertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL path may hold a webhook secret: show the host only.
        f.debug_struct("WebhookAlertSink")
            .field("host", &self.uri.host())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookAlertSink {
    /// Posts to `uri` with a 5 s timeout.
    pub fn new(uri: Uri) -> Self {
        Self {
            uri,
            timeout: Duration::from_secs(5),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sets the timeout of one delivery.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Delivers `alert` and waits for the answer; what [`AlertSink::send`] runs in a task.
    pub async fn deliver(&self, alert: &BudgetAlert) -> Result<(), String> {
        let body = serde_json::to_vec(alert).map_err(|e| e.to_string())?;
        let req = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", res.status()))
        }
    }
}

impl AlertSink for WebhookAlertSink {
    fn send(&self, alert: &BudgetAlert) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("budget alert webhook needs a tokio runtime; alert not sent");
            metrics::counter!("gw_budget_webhook_errors_total").increment(1);
            return;
        };
        let this = self.clone();
        let alert = alert.clone();
        rt.spawn(async move {
            if let Err(e) = this.deliver(&alert).await {
                tracing::warn!(host = ?this.uri.host(), error = %e, "budget alert webhook failed");
                metrics::counter!("gw_budget_webhook_errors_total").increment(1);
            }
        });
    }
}
