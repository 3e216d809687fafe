//! The configured export files, laid out once at start: each one's
//! content (payload, container), size and ETag, or why it is not served.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpResponse;

use super::export_record::{self, Framing};
use super::layout::{self, Crc, Gzip, Payload, Zip};
use crate::emulator::downloads::Content;
use crate::emulator::error_body::error;
use crate::emulator::ids::derive;
use crate::emulator::settings::bulk::{Container, ExportFormat, ExportSpec};

/// One servable export.
pub struct ExportFile {
    /// How it was configured.
    pub spec: ExportSpec,
    /// Its payload.
    pub payload: Payload,
    pub(super) content: Arc<dyn Content>,
    pub(super) etag: String,
}

impl std::fmt::Debug for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportFile").field("spec", &self.spec).finish()
    }
}

impl ExportFile {
    fn build(seed: u64, no: u64, spec: &ExportSpec) -> Result<ExportFile, String> {
        if spec.id.is_empty() || spec.id.contains(['/', '?', '#']) {
            return Err(format!("export id `{}` must be a non-empty URL path segment", spec.id));
        }
        if spec.record_bytes < export_record::MIN_RECORD_BYTES {
            return Err(format!(
                "record_bytes must be at least {}",
                export_record::MIN_RECORD_BYTES
            ));
        }
        let framing = match spec.format {
            ExportFormat::Ndjson => Framing::Ndjson,
            ExportFormat::Json => Framing::JsonArray,
        };
        let per_record = spec.record_bytes + u64::from(framing == Framing::JsonArray);
        let records = match (spec.records, spec.bytes) {
            (Some(n), None) => n,
            (None, Some(b)) => b.div_ceil(per_record),
            (None, None) => 1000,
            (Some(_), Some(_)) => return Err("set `records` or `bytes`, not both".into()),
        };
        let payload = Payload {
            seed,
            export_no: no,
            framing,
            records,
            record_bytes: spec.record_bytes,
            malformed_every: spec.malformed_every,
        };
        let content: Arc<dyn Content> = match spec.container {
            Container::None => Arc::new(payload.clone()),
            Container::Gzip => Arc::new(Gzip {
                crc: Crc::start(payload.clone()),
            }),
            Container::Zip => {
                if payload.len() > layout::ZIP_MAX {
                    return Err("a ZIP export must stay under 4 GiB (ZIP64 is not emulated)".into());
                }
                let ext = if framing == Framing::Ndjson { "ndjson" } else { "json" };
                let name = spec.entry_name.clone().unwrap_or_else(|| format!("{}.{ext}", spec.id));
                Arc::new(Zip::new(Crc::start(payload.clone()), name))
            }
        };
        let etag = format!(
            "\"{:016x}\"",
            derive(
                seed,
                &[
                    0x4554,
                    no,
                    records,
                    spec.record_bytes,
                    spec.malformed_every,
                    spec.container as u64,
                    framing as u64
                ]
            )
        );
        Ok(ExportFile {
            spec: spec.clone(),
            payload,
            content,
            etag,
        })
    }

    /// Size of the file as served.
    pub fn len(&self) -> u64 {
        self.content.len()
    }

    /// True when the file is empty (never: there is always framing).
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// Its ETag.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    pub(super) fn content_type(&self) -> &'static str {
        match (self.spec.container, self.spec.format) {
            (Container::Zip, _) => "application/zip",
            (Container::Gzip, _) => "application/gzip",
            (Container::None, ExportFormat::Ndjson) => "application/x-ndjson",
            (Container::None, ExportFormat::Json) => "application/json",
        }
    }
}

/// Every configured export.
#[derive(Debug, Default)]
pub struct ExportCatalog {
    files: HashMap<String, Arc<ExportFile>>,
    refused: HashMap<String, String>,
}

impl ExportCatalog {
    /// Lays out `specs` (and starts computing the CRCs of archives).
    /// Exports that cannot be served are logged and answer 404 with why.
    pub fn new(seed: u64, specs: &[ExportSpec]) -> Self {
        let mut c = ExportCatalog::default();
        for (no, spec) in specs.iter().enumerate() {
            if c.files.contains_key(&spec.id) {
                c.refused
                    .insert(spec.id.clone(), "the id is used by another export".into());
                continue;
            }
            match ExportFile::build(seed, no as u64, spec) {
                Ok(f) => {
                    c.files.insert(spec.id.clone(), Arc::new(f));
                }
                Err(why) => {
                    tracing::error!(export = %spec.id, "emulator: export not served: {why}");
                    c.refused.insert(spec.id.clone(), why);
                }
            }
        }
        c
    }

    /// The export `id`.
    pub fn get(&self, id: &str) -> Option<Arc<ExportFile>> {
        self.files.get(id).cloned()
    }

    pub(super) fn not_found(&self, id: &str) -> HttpResponse {
        match self.refused.get(id) {
            Some(why) => error(404, "not.found", &format!("Export {id} is not served: {why}")),
            None => error(404, "not.found", &format!("Download {id} was not found")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_exports_say_why() {
        let spec = |id: &str, container: Container, bytes: u64| ExportSpec {
            id: id.into(),
            format: ExportFormat::Ndjson,
            container,
            records: None,
            bytes: Some(bytes),
            record_bytes: 1024,
            malformed_every: 0,
            entry_name: None,
        };
        let c = ExportCatalog::new(
            1,
            &[
                spec("ok", Container::None, 10_000),
                spec("huge", Container::Zip, 5_000_000_000),
                spec("ok", Container::None, 1),
            ],
        );
        assert!(c.get("ok").is_some());
        assert!(c.refused["huge"].contains("4 GiB"));
        assert_eq!(c.get("ok").unwrap().payload.records, 10, "the first `ok` wins");
    }
}
