//! Every source kind cxrelay knows: one line each. A new kind is its folder
//! (typed config implementing [`SourceBuilder`]) plus one line here.

use super::builder::SourceBuilder;
use crate::config::component_kinds;

component_kinds! {
    /// A `[[source]]`'s kind, with its typed config.
    pub enum SourceSpec: dyn SourceBuilder {
        /// Synthetic events at a configured rate.
        Generator(super::generator::GeneratorConfig) = "generator",
        /// Signed events pushed to an HTTP path.
        Webhook(super::webhook::WebhookConfig) = "webhook",
        /// Conversation details in bulk through analytics jobs.
        AnalyticsJob(super::analytics_job::AnalyticsJobConfig) = "analytics_job",
        /// A bulk export file downloaded as a stream.
        Export(super::export_download::ExportConfig) = "export",
        /// Real-time events over Genesys notification channels (WebSocket).
        Notifications(super::notifications::NotificationsConfig) = "notifications",
        /// Recordings downloaded into files through recording batch requests.
        Recordings(super::recordings::RecordingsConfig) = "recordings",
    }
}
