//! The Genesys org the sources call: hosts, the token provider, the shared
//! request budget, and the bundled emulator when cxrelay runs it itself.

use actix::prelude::*;
#[cfg(feature = "emulator")]
use cxrelay_actors::registry::ComponentState;
use cxrelay_actors::{ComponentKind, Registry};

use super::StartError;
#[cfg(feature = "emulator")]
use crate::config::Secret;
use crate::config::{Config, Secrets};
#[cfg(feature = "emulator")]
use crate::emulator::EmulatorHandle;
use crate::genesys::{
    Credentials, GenesysOrg, Hosts, RequestBudget, RetryPolicy, TokenProvider, TokenSettings, Tokens,
};
use cxrelay_actors::supervision::{ChildSpec, Supervise, Supervisor};

/// The org, and the emulator when cxrelay runs one in-process.
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(super) struct Genesys {
    pub org: GenesysOrg,
    #[cfg(feature = "emulator")]
    pub emulator: Option<EmulatorHandle>,
}

/// The in-process emulator's `/status` details.
#[cfg(feature = "emulator")]
#[derive(serde::Serialize)]
struct EmulatorStatus {
    /// Where it listens.
    url: String,
}

/// Starts the bundled emulator in-process; answers where it listens.
#[cfg(feature = "emulator")]
fn start_emulator(config: &Config, registry: &Registry) -> Result<(Hosts, EmulatorHandle), StartError> {
    let settings = config.emulator.clone().unwrap_or_default();
    let e = crate::emulator::start_in_thread(settings, "127.0.0.1:0")
        .map_err(|e| StartError::Genesys(format!("cannot start the bundled emulator: {e}")))?;
    let component = registry.register("emulator", ComponentKind::Emulator, false);
    component.set_state(ComponentState::Running);
    component.set_status(&EmulatorStatus { url: e.url() });
    tracing::info!(url = %e.url(), "bundled emulator running in-process at {}", e.url());
    Ok((
        Hosts {
            api: e.url(),
            login: e.login_url(),
        },
        e,
    ))
}

/// The emulator's OAuth client, used when no credentials are configured.
#[cfg(feature = "emulator")]
fn emulator_client(config: &Config) -> (String, Secret) {
    let s = config.emulator.clone().unwrap_or_default();
    (s.client_id, Secret::new(s.client_secret))
}

/// `http://host:(port+1)` for `http://host:port`: where a separately run
/// emulator's login host is.
fn next_port_url(api: &str) -> Option<String> {
    let trimmed = api.trim_end_matches('/');
    let (base, port) = trimmed.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!("{base}:{}", port.checked_add(1)?))
}

/// Starts the token provider (and the in-process emulator, when the
/// environment is `emulator` without an `api_url`) if a source needs the
/// Genesys API.
pub(super) async fn start_genesys(
    config: &Config,
    secrets: &Secrets,
    registry: &Registry,
    supervisor: &Addr<Supervisor>,
    threads: &mut Vec<Arbiter>,
) -> Result<Option<Genesys>, StartError> {
    let Some(g) = &config.genesys else {
        return Ok(None);
    };
    if !config
        .source
        .iter()
        .any(|s| s.enabled && s.spec.builder().needs_genesys())
    {
        return Ok(None);
    }
    let refuse = |message: String| StartError::Genesys(message);
    #[cfg(feature = "emulator")]
    let mut emulator = None;
    let hosts = if g.runs_emulator_in_process() {
        #[cfg(feature = "emulator")]
        {
            let (hosts, e) = start_emulator(config, registry)?;
            emulator = Some(e);
            hosts
        }
        #[cfg(not(feature = "emulator"))]
        return Err(refuse(
            "this cxrelay was built without the emulator feature: set `api_url` to an emulator running elsewhere (`cxrelay emulator`)".into(),
        ));
    } else if g.is_emulator() {
        // The emulator's login host is beside its API host (the next
        // port) unless `login_url` says otherwise.
        let login = g
            .login_url
            .clone()
            .or_else(|| g.api_url.as_deref().and_then(next_port_url));
        Hosts::resolve("emulator", g.api_url.as_deref(), login.as_deref())
    } else {
        Hosts::resolve(&g.environment, g.api_url.as_deref(), g.login_url.as_deref())
    };
    let (client_id, client_secret) = match (&secrets.genesys, g.is_emulator()) {
        (Some((id, secret)), _) => (id.expose().to_string(), secret.clone()),
        #[cfg(feature = "emulator")]
        (None, true) => emulator_client(config),
        _ => return Err(refuse("no OAuth client credentials".into())),
    };
    // The token provider shows where it logs in.
    let component = registry.register("genesys-auth", ComponentKind::Auth, true);
    let thread = Arbiter::new();
    let creds = Credentials {
        client_id,
        client_secret,
    };
    let start = {
        let (hosts, component, thread) = (hosts.clone(), component.clone(), thread.handle());
        move || {
            let (hosts, creds, component) = (hosts.clone(), creds.clone(), component.clone());
            TokenProvider::start_in_arbiter(&thread, move |_| {
                TokenProvider::new(hosts, creds, TokenSettings::default(), component)
            })
        }
    };
    // Every call of every source goes through it: supervised, and behind a
    // handle that follows it across restarts.
    let first = start();
    let tokens = Tokens::new(first.clone());
    let mut first = Some(first);
    let handle = tokens.clone();
    let spec = ChildSpec::new("genesys-auth", ComponentKind::Auth, move || match first.take() {
        Some(addr) => addr,
        None => {
            let addr = start();
            handle.replace(addr.clone());
            addr
        }
    });
    let _ = supervisor.send(Supervise(spec)).await;
    threads.push(thread);
    let org = GenesysOrg {
        hosts,
        tokens,
        budget: RequestBudget::new(g.requests_per_minute),
        retry: RetryPolicy {
            timeout: g.request_timeout,
            ..RetryPolicy::default()
        },
        channels: Default::default(),
    };
    Ok(Some(Genesys {
        org,
        #[cfg(feature = "emulator")]
        emulator,
    }))
}
