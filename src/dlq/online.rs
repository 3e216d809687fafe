//! Dead-letter commands through the admin API of the cxrelay that holds
//! the store. The API lists, sends back by id or all, and purges by date;
//! filters and dry runs are worked out here from its listing.

use serde_json::json;

use super::{DlqCommand, DlqError, DlqOutput, Filter, Plan};
use crate::store::store_actor::ReplayReport;
use crate::store::DeadLetter;

/// Dead letters asked for per listing request.
const PAGE: usize = 1000;
/// Ids sent back per replay request (the API takes bodies up to 64 KiB).
const IDS_PER_REQUEST: usize = 4000;

struct Admin<'a> {
    client: awc::Client,
    base: &'a str,
    token: Option<&'a str>,
}

impl Admin<'_> {
    fn error(&self, message: String) -> DlqError {
        DlqError::Admin {
            url: self.base.to_string(),
            message,
        }
    }

    fn with_auth(&self, r: awc::ClientRequest) -> awc::ClientRequest {
        match self.token {
            Some(t) => r.insert_header(("authorization", format!("Bearer {t}"))),
            None => r,
        }
    }

    /// The JSON of a successful answer.
    async fn answer(
        &self,
        response: Result<
            awc::ClientResponse<
                impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
            >,
            awc::error::SendRequestError,
        >,
    ) -> Result<serde_json::Value, DlqError> {
        let mut response = response.map_err(|e| self.error(e.to_string()))?;
        let body = response
            .body()
            .limit(256 << 20)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| self.error(e.to_string()))?;
        if !response.status().is_success() {
            let why = value["error"].as_str().unwrap_or("request failed");
            return Err(self.error(format!("{}: {why}", response.status())));
        }
        Ok(value)
    }

    async fn list(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, DlqError> {
        let url = format!("{}/admin/dead-letters?after={after}&limit={limit}", self.base);
        let value = self.answer(self.with_auth(self.client.get(url)).send().await).await?;
        serde_json::from_value(value["dead_letters"].clone()).map_err(|e| self.error(format!("unexpected answer: {e}")))
    }

    /// Calls `each` for every dead letter, a page at a time.
    async fn each(&self, mut each: impl FnMut(&DeadLetter)) -> Result<(), DlqError> {
        let mut after = 0;
        loop {
            let page = self.list(after, PAGE).await?;
            let Some(last) = page.last().map(|l| l.id) else {
                return Ok(());
            };
            page.iter().for_each(&mut each);
            after = last;
        }
    }

    async fn replay(&self, body: serde_json::Value) -> Result<ReplayReport, DlqError> {
        let url = format!("{}/admin/dead-letters/replay", self.base);
        let value = self
            .answer(self.with_auth(self.client.post(url)).send_json(&body).await)
            .await?;
        Ok(ReplayReport {
            replayed: value["replayed"].as_u64().unwrap_or(0) as usize,
            refused: serde_json::from_value(value["refused"].clone())
                .map_err(|e| self.error(format!("unexpected answer: {e}")))?,
        })
    }
}

/// Runs a command through a running service's admin API at `base`.
pub async fn run_online(base: &str, token: Option<&str>, cmd: &DlqCommand) -> Result<DlqOutput, DlqError> {
    let admin = Admin {
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .finish(),
        base: base.trim_end_matches('/'),
        token,
    };
    match cmd {
        DlqCommand::List { after, limit, filter } if filter.is_empty() => {
            Ok(DlqOutput::Listed(admin.list(*after, *limit).await?))
        }
        DlqCommand::List { after, limit, filter } => {
            let mut out = Vec::new();
            let mut after = *after;
            while out.len() < *limit {
                let page = admin.list(after, PAGE).await?;
                let Some(last) = page.last().map(|l| l.id) else {
                    break;
                };
                out.extend(page.into_iter().filter(|l| filter.accepts(l)));
                after = last;
            }
            out.truncate(*limit);
            Ok(DlqOutput::Listed(out))
        }
        DlqCommand::Show(id) => {
            let found = admin.list(id.saturating_sub(1), 1).await?;
            match found.into_iter().next() {
                Some(l) if l.id == *id => Ok(DlqOutput::Shown(Box::new(l))),
                _ => Err(DlqError::NotFound(*id)),
            }
        }
        DlqCommand::Replay {
            ids,
            filter,
            dry_run: true,
        } => {
            let mut plan = Plan::default();
            let wanted = |l: &DeadLetter| match ids {
                Some(ids) => ids.contains(&l.id),
                None => filter.accepts(l),
            };
            let mut seen = Vec::new();
            admin
                .each(|l| {
                    if wanted(l) {
                        plan.replay(l);
                        seen.push(l.id);
                    }
                })
                .await?;
            for id in ids.iter().flatten().filter(|id| !seen.contains(id)) {
                plan.refused.push((*id, "no such dead letter".into()));
            }
            Ok(DlqOutput::WouldReplay(plan))
        }
        DlqCommand::Replay {
            ids,
            filter,
            dry_run: false,
        } => {
            let ids = match ids {
                Some(ids) => ids.clone(),
                None if filter.is_empty() => return Ok(DlqOutput::Replayed(admin.replay(json!({"all": true})).await?)),
                None => matching_ids(&admin, filter).await?,
            };
            let mut report = ReplayReport::default();
            for chunk in ids.chunks(IDS_PER_REQUEST) {
                let r = admin.replay(json!({ "ids": chunk })).await?;
                report.replayed += r.replayed;
                report.refused.extend(r.refused);
            }
            Ok(DlqOutput::Replayed(report))
        }
        DlqCommand::Purge {
            before_ms,
            filter,
            dry_run: true,
        } => {
            let mut plan = Plan::default();
            admin
                .each(|l| {
                    if l.at_ms < *before_ms && filter.accepts(l) {
                        plan.purge(l);
                    }
                })
                .await?;
            Ok(DlqOutput::WouldPurge(plan))
        }
        DlqCommand::Purge { filter, .. } if !filter.is_empty() => Err(DlqError::Usage(
            "a running cxrelay purges by date only: stop it to purge by --listener or --source, or purge without them"
                .into(),
        )),
        DlqCommand::Purge { before_ms, .. } => {
            let url = format!("{}/admin/dead-letters/purge", admin.base);
            let value = admin
                .answer(
                    admin
                        .with_auth(admin.client.post(url))
                        .send_json(&json!({ "before_ms": before_ms }))
                        .await,
                )
                .await?;
            Ok(DlqOutput::Purged(value["purged"].as_u64().unwrap_or(0) as usize))
        }
    }
}

async fn matching_ids(admin: &Admin<'_>, filter: &Filter) -> Result<Vec<u64>, DlqError> {
    let mut ids = Vec::new();
    admin
        .each(|l| {
            if filter.accepts(l) {
                ids.push(l.id);
            }
        })
        .await?;
    Ok(ids)
}
