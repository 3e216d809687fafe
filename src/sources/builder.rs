//! What every source kind implements, and what it is built with.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentKind, Progress};
use cxrelay_actors::supervision::{ChildSpec, Shutdown, Supervise, Supervisor};
use cxrelay_actors::Registry;
use futures_util::future::LocalBoxFuture;

use crate::config::{KeyProblem, Secret, Secrets};
use crate::genesys::GenesysOrg;
use crate::http::IngressRoutes;
use crate::ingest::Ingest;
use crate::sources::delivery::Delivery;
use crate::sources::notifications::NotificationSources;
use crate::sources::telemetry::SourceKindStatus;
use crate::store::{PutDeadLetters, StoreDb};

/// How long one Genesys API call may legitimately run with all its retries
/// (6 attempts of up to 30 s, the backoff between them, and `Retry-After`
/// waits shared by every source): a source calling the API reports
/// progress at least this often, so its stuck threshold starts here.
pub const API_CALL_PATIENCE: Duration = Duration::from_secs(15 * 60);

/// Why a source could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl BuildError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError(message.into())
    }
}

/// A config that the loader would have refused (a library user building
/// one by hand): the problems, keyed.
impl From<Vec<KeyProblem>> for BuildError {
    fn from(problems: Vec<KeyProblem>) -> Self {
        let text: Vec<String> = problems.iter().map(|p| format!("`{}`: {}", p.key, p.message)).collect();
        BuildError(text.join("; "))
    }
}

/// A source kind's config: checked when the file is loaded, described by
/// `cxrelay check`, and built into running actors at start.
pub trait SourceBuilder: std::fmt::Debug {
    /// Problems of this table on its own (keys relative to it): what the
    /// conversion into the source's runtime settings refuses.
    fn check(&self, name: &str) -> Vec<KeyProblem>;

    /// Whether the source calls the Genesys API (and so needs `[genesys]`).
    fn needs_genesys(&self) -> bool;

    /// The HTTP path the source serves, if any (unique, not reserved).
    fn http_path(&self) -> Option<&str> {
        None
    }

    /// Notification channels the source opens (the OAuth client's 20 are
    /// shared by every source).
    fn channels_needed(&self) -> usize {
        0
    }

    /// Whether the source acknowledges upstream (a 202 to a sender) and so
    /// needs the journal to make that acknowledgement mean "committed".
    fn acknowledges_upstream(&self) -> bool {
        false
    }

    /// The environment variables holding its secrets, by the key naming them.
    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    /// What it will do, in one line for `cxrelay check`.
    fn describe(&self) -> String;

    /// The topics it may publish, as patterns (`*` where a part varies,
    /// `>` for anything): `cxrelay check` warns about a listener that
    /// matches none of them.
    fn produces(&self, name: &str) -> Vec<String>;

    /// Makes its relative paths relative to `base` (the config file's
    /// directory), so that where cxrelay is started from does not matter.
    fn resolve_paths(&mut self, _base: &std::path::Path) {}

    /// Starts the source: supervised actors, routes, whatever it runs on.
    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>>;
}

/// What a source is built with.
#[derive(Clone)]
pub struct SourceContext {
    /// Where it hands events in.
    pub ingest: Ingest,
    /// The store, for its checkpoint (none with the journal off).
    pub db: Option<Arc<StoreDb>>,
    /// Component health.
    pub registry: Registry,
    /// The Genesys org, when `[genesys]` is configured and a source needs it.
    pub org: Option<GenesysOrg>,
    /// Where input that cannot become events is kept.
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// Restarts the source's actors.
    pub supervisor: Addr<Supervisor>,
    /// The secrets the config names.
    pub secrets: Arc<Secrets>,
    /// Routes on the HTTP server.
    pub ingress: IngressRoutes,
    /// Running notifications sources (the admin API controls them).
    pub notifications: NotificationSources,
}

impl SourceContext {
    /// Registers the source's health entry (it gates readiness; the
    /// supervisor stops sources by their component kind at shutdown), with
    /// its `[[source]]` kind in its status.
    pub fn component(&self, name: &str, kind: &'static str) -> Arc<Component> {
        let component = self.registry.register(name, ComponentKind::Source, true);
        component.set_status(&SourceKindStatus { kind });
        component
    }

    /// A bulk source's way out: ingest, dead letters, its health entry.
    pub fn delivery(&self, component: Arc<Component>) -> Delivery {
        super::telemetry::DeliveryStarted {
            source: component.name(),
        }
        .emit();
        Delivery {
            ingest: self.ingest.clone(),
            dead_letters: self.dead_letters.clone(),
            component,
            progress: None,
        }
    }

    /// The org (the loader made sure a source that needs it has it).
    pub fn org(&self) -> Result<GenesysOrg, BuildError> {
        self.org
            .clone()
            .ok_or_else(|| BuildError::new("needs a `[genesys]` section"))
    }

    /// The secret of `component` named by its `key`.
    pub fn secret(&self, component: &str, key: &str) -> Option<&Secret> {
        self.secrets.component(component, key)
    }

    /// Puts a child under supervision (and starts it).
    pub async fn supervise(&self, spec: ChildSpec) {
        let _ = self.supervisor.send(Supervise(spec)).await;
    }

    /// Supervises a bulk source: its actor runs on a thread of its own
    /// (page parsing and body reading stay off the supervisor's), built by
    /// `make` at start and at every restart with that instance's progress
    /// report, which restarts it when it holds work and stops moving.
    pub async fn supervise_on_own_thread<A>(
        &self,
        name: &str,
        component: Arc<Component>,
        stuck_after: std::time::Duration,
        make: impl Fn(Arc<Progress>) -> A + Send + Sync + 'static,
    ) where
        A: Actor<Context = Context<A>> + Handler<Shutdown>,
    {
        let thread = Arbiter::new().handle();
        let make = Arc::new(make);
        let spec = ChildSpec::new(name.to_string(), ComponentKind::Source, move || {
            // Taken here, right after the supervisor made the new
            // instance's handle: the actor is built later, on its thread.
            let progress = component.report_progress(stuck_after);
            let make = make.clone();
            A::start_in_arbiter(&thread, move |_| make(progress))
        });
        self.supervise(spec).await;
    }
}

/// A topic template as a pattern: each segment holding a `{placeholder}`
/// becomes `*`.
pub fn template_pattern(template: &str) -> String {
    template
        .split('.')
        .map(|seg| if seg.contains('{') { "*" } else { seg })
        .collect::<Vec<_>>()
        .join(".")
}

/// `path` made relative to `base` when it is relative.
pub fn resolve_path(path: &mut std::path::PathBuf, base: &std::path::Path) {
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}
