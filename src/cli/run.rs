//! `cxrelay run` and `cxrelay demo`: start the service and run it until a
//! signal.

use std::path::Path;
use std::process::ExitCode;
#[cfg(feature = "emulator")]
use std::time::Duration;

use cxrelay::config::{Config, Loaded};
use cxrelay::service::Service;
use cxrelay::telemetry;

use super::{load_or_report, wait_for_signal};

/// The configuration `cxrelay demo` runs when there is no config file: the
/// shipped `config.toml` (bundled emulator, embedded store, file sink).
#[cfg(feature = "emulator")]
pub const DEMO_CONFIG: &str = include_str!("../../config.toml");

/// Where the built-in demo writes (relative to the working directory).
#[cfg(feature = "emulator")]
pub const DEMO_DIR: &str = "cxrelay-demo";

/// `cxrelay run --config path` (or `demo` with a config file).
pub fn run(path: &Path, demo: bool) -> ExitCode {
    let Some(mut loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    if demo {
        point_at_emulator(&mut loaded.config);
    }
    serve(
        loaded,
        demo.then(|| format!("cxrelay demo: running {}", path.display())),
    )
}

/// Whatever org the file names, a demo talks to the emulator.
fn point_at_emulator(config: &mut Config) {
    #[cfg(feature = "emulator")]
    {
        use cxrelay::config::GenesysConfig;
        let g = config.genesys.get_or_insert_with(|| GenesysConfig {
            client_id_env: "CXRELAY_DEMO_CLIENT_ID".into(),
            client_secret_env: "CXRELAY_DEMO_CLIENT_SECRET".into(),
            ..GenesysConfig::for_environment("emulator")
        });
        g.environment = "emulator".into();
        g.api_url = None;
        g.login_url = None;
    }
    #[cfg(not(feature = "emulator"))]
    let _ = config;
}

/// `cxrelay demo` without a config file: the built-in configuration,
/// writing under `./cxrelay-demo/`.
#[cfg(feature = "emulator")]
pub fn run_embedded_demo() -> ExitCode {
    let mut loaded = match Loaded::from_str(DEMO_CONFIG, "(built-in demo config)") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: the built-in demo configuration is invalid\n{e}");
            return ExitCode::from(2);
        }
    };
    let dir = cxrelay::config::base_dir(&Path::new(DEMO_DIR).join("config.toml"));
    loaded.config.resolve_paths(&dir);
    for l in &mut loaded.config.listener {
        // Files are closed (and so visible) every 2 s rather than every
        // 10 s: someone trying cxrelay sees events at once.
        if let cxrelay::sinks::SinkSpec::File(f) = &mut l.sink.spec {
            f.rotate_interval = Duration::from_secs(2);
        }
    }
    // Whoever already uses 8080 (another cxrelay, say), the demo runs.
    if std::net::TcpListener::bind(&loaded.config.http.listen).is_err() {
        loaded.config.http.listen = "127.0.0.1:0".into();
    }
    let banner = format!(
        "cxrelay demo: no {} here, so the built-in demo configuration runs, writing under {}/\n\
         cxrelay demo: (it is the config.toml shipped with cxrelay; README.md documents every key)",
        super::DEFAULT_CONFIG,
        dir.display()
    );
    point_at_emulator(&mut loaded.config);
    serve(loaded, Some(banner))
}

/// Runs the service until SIGTERM/SIGINT; `demo` is the banner of a demo
/// (which always talks to the emulator).
fn serve(loaded: Loaded, demo: Option<String>) -> ExitCode {
    // A file-size limit must fail writes with EFBIG (reported, retried),
    // not kill the process.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    telemetry::init_logging(loaded.config.service.log_format, &loaded.config.service.log_level);
    let system = actix::System::new();
    let outputs = sink_paths(&loaded.config);
    let result = system.block_on(async move {
        let service = Service::start(loaded).await?;
        if let Some(banner) = &demo {
            eprintln!("{banner}");
            #[cfg(feature = "emulator")]
            {
                let url = service.emulator().map(|e| e.url()).unwrap_or_default();
                eprintln!("cxrelay demo: bundled Genesys Cloud emulator at {url}");
            }
            eprintln!(
                "cxrelay demo: status page at http://{}/ (JSON at /status)",
                service.http_addr()
            );
            for p in &outputs {
                eprintln!("cxrelay demo: events are written to {p}");
            }
            eprintln!("cxrelay demo: Ctrl-C stops it");
        }
        wait_for_signal().await;
        Ok::<bool, cxrelay::service::StartError>(service.shutdown().await)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Where file sinks write, for the demo's banner.
fn sink_paths(c: &Config) -> Vec<String> {
    c.listener
        .iter()
        .filter_map(|l| l.sink.spec.builder().output_dir().map(|p| p.display().to_string()))
        .collect()
}
