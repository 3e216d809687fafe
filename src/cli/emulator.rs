//! `cxrelay emulator`: the bundled Genesys Cloud emulator alone.

use std::path::Path;
use std::process::ExitCode;

use cxrelay::config;
use cxrelay::telemetry;

use super::{load_or_report, wait_for_signal};

/// Runs the emulator on `listen` until a signal.
pub fn emulator(path: &Path, listen: &str, seed: Option<u64>) -> ExitCode {
    let mut settings = if path.exists() {
        match load_or_report(path) {
            Some(l) => {
                telemetry::init_logging(l.config.service.log_format, &l.config.service.log_level);
                l.config.emulator.unwrap_or_default()
            }
            None => return ExitCode::from(2),
        }
    } else {
        telemetry::init_logging(config::LogFormat::Human, "info");
        cxrelay::emulator::EmulatorSettings::default()
    };
    if let Some(seed) = seed {
        settings.seed = seed;
    }
    let client = settings.client_id.clone();
    let system = actix::System::new();
    let result = system.block_on(async move {
        let handle = cxrelay::emulator::start(settings, listen).await?;
        eprintln!(
            "cxrelay emulator: listening on {} (OAuth client `{client}`); point cxrelay at it with\n  [genesys]\n  environment = \"emulator\"\n  api_url = \"{}\"",
            handle.url(),
            handle.url()
        );
        wait_for_signal().await;
        handle.stop().await;
        Ok::<(), std::io::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot run the emulator on {listen}: {e}");
            ExitCode::from(2)
        }
    }
}
