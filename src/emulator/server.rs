//! Starting the emulator: one actix-web server carrying every API area,
//! the WebSocket endpoint and the control endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{middleware, web, App, HttpServer};

use super::faults::{Fault, ScheduledFault};
use super::hosts::{sibling_ports, HostAddrs};
use super::settings::EmulatorSettings;
use super::state::EmulatorState;
use super::{analytics, control, error_body, exports, gate, notifications, oauth, organization, recordings};

/// A running emulator.
pub struct EmulatorHandle {
    hosts: HostAddrs,
    state: Arc<EmulatorState>,
    server: ServerHandle,
    /// The emulator's own thread and system, when it has them.
    own: Option<(actix_rt::System, JoinHandle<()>)>,
}

impl EmulatorHandle {
    /// The API host's address.
    pub fn addr(&self) -> SocketAddr {
        self.hosts.api
    }

    /// `http://host:port` of the API host.
    pub fn url(&self) -> String {
        self.hosts.api_url()
    }

    /// The login host's address.
    pub fn login_addr(&self) -> SocketAddr {
        self.hosts.login
    }

    /// `http://host:port` of the login host.
    pub fn login_url(&self) -> String {
        self.hosts.login_url()
    }

    /// The download host's address (signed URLs point there).
    pub fn downloads_addr(&self) -> SocketAddr {
        self.hosts.downloads
    }

    /// The streaming host's address (`connectUri`s point there).
    pub fn streaming_addr(&self) -> SocketAddr {
        self.hosts.streaming
    }

    /// Every host's address.
    pub fn hosts(&self) -> HostAddrs {
        self.hosts
    }

    /// The emulator's world, for assertions on what it was asked.
    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    /// Applies a fault now (as `POST /_emulator/faults` does).
    pub fn inject(&self, fault: Fault) {
        self.state.apply(fault);
    }

    /// Stops the server (inside the system that started it).
    pub async fn stop(mut self) {
        self.server.stop(false).await;
        self.end_thread();
    }

    fn end_thread(&mut self) {
        if let Some((system, thread)) = self.own.take() {
            system.stop();
            let _ = thread.join();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        // An emulator on its own thread ends with its handle; one inside
        // the caller's system ends with that system.
        self.end_thread();
    }
}

fn app_config(state: Arc<EmulatorState>) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/oauth/token", web::post().to(oauth::token))
            .route("/api/v2/organizations/me", web::get().to(organization::me))
            .configure(analytics::routes)
            .configure(recordings::routes)
            .configure(exports::routes)
            .route("/_emulator/faults", web::post().to(control::arm))
            .route("/_emulator/faults", web::get().to(control::armed))
            .route("/_emulator/faults", web::delete().to(control::clear))
            .route("/_emulator/requests", web::get().to(control::requests))
            .configure(notifications::routes);
    }
}

/// Unknown paths answer like the platform does.
async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    error_body::error(
        404,
        "not.found",
        &format!("The requested resource {} was not found.", req.path()),
    )
}

/// Binds the API host on `listen` and the login, streaming and download
/// hosts beside it (see [`sibling_ports`]).
fn bind_hosts(listen: &str) -> std::io::Result<(HostAddrs, [std::net::TcpListener; 4])> {
    let api = std::net::TcpListener::bind(listen)?;
    let api_addr = api.local_addr()?;
    // The port asked for, not the one bound: `:0` asks for free ports.
    let asked = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(0);
    let [a, b, c] = sibling_ports(asked);
    let bind = |port: u16| std::net::TcpListener::bind(SocketAddr::new(api_addr.ip(), port));
    let (login, streaming, downloads) = (bind(a)?, bind(b)?, bind(c)?);
    let hosts = HostAddrs {
        api: api_addr,
        login: login.local_addr()?,
        streaming: streaming.local_addr()?,
        downloads: downloads.local_addr()?,
    };
    Ok((hosts, [api, login, streaming, downloads]))
}

/// Starts the emulator on `listen` (the API host; the other hosts beside
/// it) inside the current actix system.
pub async fn start(settings: EmulatorSettings, listen: &str) -> std::io::Result<EmulatorHandle> {
    let state = EmulatorState::new(settings);
    let configure = app_config(state.clone());
    let (hosts, listeners) = bind_hosts(listen)?;
    state.set_hosts(hosts);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(gate::gate))
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .workers(2)
    .shutdown_timeout(1);
    for l in listeners {
        server = server.listen(l)?;
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    schedule_faults(&state);
    let addr = hosts.api;
    tracing::info!(%addr, login = %hosts.login, streaming = %hosts.streaming, downloads = %hosts.downloads,
        seed = state.settings.seed, "emulator listening on {addr}");
    Ok(EmulatorHandle {
        hosts,
        state,
        server: handle,
        own: None,
    })
}

/// Starts the emulator on its own thread with its own actix system (for
/// tests and tools that are not inside one). It stops when the handle is
/// dropped.
pub fn start_in_thread(settings: EmulatorSettings, listen: &str) -> std::io::Result<EmulatorHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let listen = listen.to_string();
    let thread = std::thread::Builder::new().name("emulator".into()).spawn(move || {
        let system = actix_rt::System::new();
        match system.block_on(start(settings, &listen)) {
            Ok(h) => {
                let _ = tx.send(Ok((
                    h.hosts,
                    h.state.clone(),
                    h.server.clone(),
                    actix_rt::System::current(),
                )));
                // Runs until the handle stops this system.
                let _ = system.run();
                drop(h);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    })?;
    let (hosts, state, server, system) = rx
        .recv()
        .map_err(|_| std::io::Error::other("emulator thread ended before starting"))??;
    Ok(EmulatorHandle {
        hosts,
        state,
        server,
        own: Some((system, thread)),
    })
}

fn schedule_faults(state: &Arc<EmulatorState>) {
    for ScheduledFault { after, every, fault } in state.settings.faults.clone() {
        let state = state.clone();
        actix_rt::spawn(async move {
            if let Some(d) = after {
                tokio::time::sleep(d).await;
            }
            loop {
                state.apply(fault.clone());
                match every {
                    Some(d) if !d.is_zero() => tokio::time::sleep(d).await,
                    _ => break,
                }
            }
        });
    }
}
