//! Mask presets: names standing for the PII fields of Genesys's models, so
//! that a config says `mask = ["@genesys-pii"]` rather than a list that
//! misses one. The fields are those of the SDK's models (version noted in
//! README): wherever they appear they hold a phone number, an address, an
//! e-mail, a name or free text an agent typed.

/// The preset's name in `mask`.
pub const GENESYS_PII: &str = "@genesys-pii";

/// Queue conversation events (`v2.routing.queues.{id}.conversations`,
/// QueueConversationEventTopicConversation): the participant's and the
/// conversation's `address`, `name`, custom `attributes`; each
/// communication's `self` / `other` address (`addressRaw`,
/// `addressDisplayable`, `addressNormalized`, `name`, `nameRaw`), a
/// message's `toAddress` / `fromAddress`, a callback's numbers and names,
/// an e-mail's `subject`, the wrap-up's `notes`.
const QUEUE_CONVERSATION: &[&str] = &[
    "address",
    "name",
    "attributes",
    "addressRaw",
    "addressDisplayable",
    "addressNormalized",
    "nameRaw",
    "toAddress",
    "fromAddress",
    "callbackNumbers",
    "callbackUserName",
    "callerIdName",
    "subject",
    "notes",
];

/// Detail events (`v2.detail.events.conversation.{id}.*`): `ani`, `dnis`,
/// `addressTo`, `addressFrom`, callback numbers and name, `subject`, and
/// after-call work's `wrapupNotes`.
const DETAIL_EVENTS: &[&str] = &[
    "ani",
    "dnis",
    "addressTo",
    "addressFrom",
    "callbackNumbers",
    "callbackUserName",
    "subject",
    "wrapupNotes",
];

/// Conversation detail records (AnalyticsConversation and its
/// participants, sessions, segments, flows): the participant's name and
/// attributes, the session's addresses and numbers, e-mail recipients, the
/// segment's `wrapUpNote`, a flow's transfer target.
const ANALYTICS: &[&str] = &[
    "participantName",
    "attributes",
    "ani",
    "dnis",
    "sessionDnis",
    "addressFrom",
    "addressTo",
    "addressOther",
    "addressSelf",
    "callbackNumbers",
    "callbackUserName",
    "remote",
    "remoteNameDisplayable",
    "cc",
    "bcc",
    "destinationAddresses",
    "subject",
    "screenShareAddressSelf",
    "videoAddressSelf",
    "wrapUpNote",
    "transferTargetAddress",
    "transferTargetName",
];

/// The field names `@genesys-pii` stands for, sorted, each once.
pub fn genesys_pii() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = QUEUE_CONVERSATION
        .iter()
        .chain(DETAIL_EVENTS)
        .chain(ANALYTICS)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// `mask` with its presets replaced by the fields they stand for; an
/// unknown preset (a name starting with `@`) is an error naming it.
pub fn expand(mask: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(mask.len());
    for name in mask {
        if name == GENESYS_PII {
            out.extend(genesys_pii().into_iter().map(str::to_string));
        } else if name.starts_with('@') {
            return Err(format!("unknown mask preset `{name}` (known: `{GENESYS_PII}`)"));
        } else {
            out.push(name.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_expands_to_the_models_pii_fields() {
        let m = expand(&["@genesys-pii".into(), "customField".into()]).unwrap();
        for f in [
            "addressRaw",
            "nameRaw",
            "wrapupNotes",
            "wrapUpNote",
            "participantName",
            "ani",
            "customField",
        ] {
            assert!(m.iter().any(|x| x == f), "{f}");
        }
        assert!(!m.iter().any(|x| x == "aniName"), "not a field of the models");
        assert!(expand(&["@nope".into()]).unwrap_err().contains("@nope"));
    }
}
