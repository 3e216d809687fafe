//! `kind = "http"`: NDJSON batches POSTed to a URL; a 2xx is the commit.

mod config;
pub use config::HttpSinkConfig;

use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

use crate::config::Secret;
use crate::sinks::{encode_ndjson, SinkError, SinkWriter};

/// POSTs each batch as one NDJSON body; a 2xx answer is the commit.
pub struct HttpWriter {
    client: awc::Client,
    url: String,
    authorization: Option<Secret>,
    sent_batches: u64,
}

impl HttpWriter {
    /// A writer to `url` with a per-request `timeout`; `authorization` is
    /// sent as the `Authorization` header. Must be built on the thread that
    /// uses it (the HTTP client is per thread).
    pub fn new(url: String, timeout: Duration, authorization: Option<Secret>) -> Self {
        // A redirect is a failed commit: awc would turn the POST into a GET
        // whose 2xx would acknowledge a batch nobody received.
        let client = awc::Client::builder().timeout(timeout).disable_redirects().finish();
        HttpWriter {
            client,
            url,
            authorization,
            sent_batches: 0,
        }
    }
}

impl SinkWriter for HttpWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let mut body = Vec::with_capacity(events.len() * 512);
        for ev in events {
            encode_ndjson(ev, &mut body);
        }
        let mut req = self
            .client
            .post(&self.url)
            .insert_header(("content-type", "application/x-ndjson"));
        if let Some(auth) = &self.authorization {
            req = req.insert_header(("authorization", auth.expose()));
        }
        self.sent_batches += 1;
        let url = crate::urls::redacted(&self.url);
        Box::pin(async move {
            let mut res = req.send_body(body).await.map_err(|e| SinkError::Transport {
                url: url.clone(),
                message: e.to_string(),
            })?;
            let status = res.status();
            if status.is_success() {
                return Ok(());
            }
            let body = res
                .body()
                .limit(512)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Err(SinkError::Http {
                status: status.as_u16(),
                url,
                body,
            })
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"url": crate::urls::redacted(&self.url), "batches_sent": self.sent_batches})
    }
}
