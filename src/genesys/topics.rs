//! What a notification topic is about, by topic family: which segment of
//! `v2.conversations.chats.{id}.members` or
//! `v2.audits.entitytype.{type}.entityid.{id}` is the entity id, whether the
//! body is a conversation, and which body field says when the event
//! happened.
//!
//! The families are the platform's topic names (the notification topic
//! list of the Platform API); a topic of no known family keeps its first
//! id-like segment, never a word such as `chats` that would put every
//! event of a family on one partition.

/// What the `{id}` of a family names, and so what the partition key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// A conversation: the id is the key (unless the body names one).
    Conversation,
    /// A user or queue whose conversations the bodies are: the body's `id`
    /// is the conversation and the key; the topic's id is the fallback.
    ConversationsOf,
    /// Some other entity (user, queue, flow, audited entity, campaign, ...).
    Entity,
    /// Nothing: an org-wide topic (`v2.analytics.conversations.details.jobs.availability`).
    Nothing,
}

/// Which body field is the event time of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// `eventTime`, else the usual ISO time fields (see
    /// [`crate::genesys::notification::derive`]).
    Usual,
    /// `modifiedDate` first (presence: the body is the presence as it now
    /// is, and `modifiedDate` is when it became so).
    ModifiedDate,
}

/// One topic family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Leading segments of its topics: `{id}` is the entity id, `{media}`
    /// a conversation media type (`chats`, `calls`, ...), `*` any one
    /// segment, anything else literal.
    pub pattern: &'static str,
    /// What its `{id}` names.
    pub names: Names,
    /// Where its event time is.
    pub time: TimeField,
}

const fn fam(pattern: &'static str, names: Names) -> Family {
    Family {
        pattern,
        names,
        time: TimeField::Usual,
    }
}

use Names::{Conversation, ConversationsOf, Entity, Nothing};

/// Known families, the more specific first (the first that matches wins).
pub const FAMILIES: &[Family] = &[
    fam("v2.detail.events.conversation.{id}", Conversation),
    // `v2.conversations.{media}.{id}...`: the media type comes before the
    // id, and is no id itself.
    fam("v2.conversations.{media}.{id}", Conversation),
    fam("v2.conversations.{media}", Nothing),
    fam("v2.conversations.{id}", Conversation),
    fam("v2.users.*.conversations.{id}.recordings", Conversation),
    fam("v2.users.{id}.conversations", ConversationsOf),
    Family {
        pattern: "v2.users.{id}.presence",
        names: Entity,
        time: TimeField::ModifiedDate,
    },
    fam("v2.users.{id}", Entity),
    fam("v2.routing.queues.{id}.conversations", ConversationsOf),
    fam("v2.routing.queues.{id}", Entity),
    fam("v2.analytics.*.details", Nothing),
    fam("v2.analytics.*.{id}", Entity),
    fam("v2.audits.entitytype.*.entityid.{id}", Entity),
    fam("v2.flows.instances.flow.{id}", Entity),
    fam("v2.flows.{id}", Entity),
    fam("v2.taskmanagement.workitems.queues.{id}", Entity),
    fam("v2.taskmanagement.workitems.users.{id}", Entity),
    fam("v2.taskmanagement.workitems.{id}", Entity),
    fam("v2.telephony.providers.edges.phones.{id}", Entity),
    fam("v2.telephony.providers.edges.trunks.{id}", Entity),
    fam("v2.telephony.providers.edges.{id}", Entity),
    fam("v2.outbound.settings", Nothing),
    fam("v2.outbound.schedules.*.{id}", Entity),
    fam("v2.outbound.*.{id}", Entity),
    fam("v2.gamification.scorecards.users.{id}", Entity),
    fam("v2.journey.sessions.{id}", Entity),
    fam("v2.externalcontacts.contacts.{id}", Entity),
    fam("v2.workforcemanagement.agents.{id}", Entity),
    fam("v2.workforcemanagement.businessunits.{id}", Entity),
    fam("v2.workforcemanagement.managementunits.{id}", Entity),
    fam("v2.system", Nothing),
];

/// A topic's family and the id it names there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicEntity<'t> {
    /// The family (`None`: no known family).
    pub family: Option<&'static Family>,
    /// The entity id the topic names.
    pub id: Option<&'t str>,
}

impl TopicEntity<'_> {
    /// What the id names (an unknown family's id is some entity).
    pub fn names(&self) -> Names {
        self.family.map_or(Names::Entity, |f| f.names)
    }

    /// Where the event time is.
    pub fn time(&self) -> TimeField {
        self.family.map_or(TimeField::Usual, |f| f.time)
    }
}

/// What [`topic_entity`] finds in a topic, kept apart from the topic's
/// text: worked out once for each topic a channel subscribes to, then
/// applied to every frame on it (the analysis splits the topic and tries
/// its area's families).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicShape {
    family: Option<&'static Family>,
    /// Where the id is in the topic.
    id: Option<std::ops::Range<usize>>,
}

impl TopicShape {
    /// The shape of `topic`.
    pub fn of(topic: &str) -> TopicShape {
        let e = topic_entity(topic);
        TopicShape {
            family: e.family,
            // The id is a piece of `topic`: its place is its distance
            // from the topic's start.
            id: e.id.map(|id| {
                let at = id.as_ptr().addr() - topic.as_ptr().addr();
                at..at + id.len()
            }),
        }
    }

    /// The entity of `topic`, a topic with this shape (the same text as
    /// the one it was taken from).
    pub fn entity<'t>(&self, topic: &'t str) -> TopicEntity<'t> {
        TopicEntity {
            family: self.family,
            id: self.id.clone().and_then(|r| topic.get(r)),
        }
    }
}

/// The media types of `v2.conversations.{media}.{id}` topics.
const MEDIA: &[&str] = &[
    "callbacks",
    "calls",
    "chats",
    "cobrowsesessions",
    "emails",
    "messages",
    "screenshares",
    "socialexpressions",
    "videos",
];

/// A segment that can be an id: not empty, not a wildcard, not a
/// `{placeholder}` left in a topic written as a pattern.
fn id_like(s: &str) -> bool {
    !s.is_empty() && s != "*" && s != ">" && !s.starts_with('{')
}

/// One segment of a family's pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Id,
    Media,
    Any,
    Literal(&'static str),
}

/// The families of one area (a pattern's second segment, `users` in
/// `v2.users.{id}`), in their order, each with its pattern split and read
/// once: a topic is tried only against the families of its area, for each
/// notification.
struct Area {
    name: &'static str,
    families: Vec<(&'static Family, Vec<Seg>)>,
}

static AREAS: std::sync::LazyLock<Vec<Area>> = std::sync::LazyLock::new(|| {
    let mut areas: Vec<Area> = Vec::new();
    for family in FAMILIES {
        let pattern: Vec<Seg> = family
            .pattern
            .split('.')
            .map(|p| match p {
                "{id}" => Seg::Id,
                "{media}" => Seg::Media,
                "*" => Seg::Any,
                literal => Seg::Literal(literal),
            })
            .collect();
        // Every pattern names its area (a test holds them to it).
        let Some(&Seg::Literal(name)) = pattern.get(1) else {
            continue;
        };
        match areas.iter_mut().find(|a| a.name == name) {
            Some(area) => area.families.push((family, pattern)),
            None => areas.push(Area {
                name,
                families: vec![(family, pattern)],
            }),
        }
    }
    areas
});

/// The most segments a family's pattern has.
const MAX_PATTERN_SEGMENTS: usize = 6;

/// The id `pattern` captures from a topic's leading `segments` (at most
/// [`MAX_PATTERN_SEGMENTS`]) when it matches them: `Some(None)` for a
/// match without `{id}`.
fn capture<'t>(pattern: &[Seg], segments: &[&'t str]) -> Option<Option<&'t str>> {
    let mut id = None;
    for (i, p) in pattern.iter().enumerate() {
        let s = *segments.get(i)?;
        match *p {
            Seg::Id if id_like(s) => id = Some(s),
            Seg::Media if MEDIA.iter().any(|m| m.eq_ignore_ascii_case(s)) => {}
            Seg::Any => {}
            Seg::Literal(literal) if literal.eq_ignore_ascii_case(s) => {}
            _ => return None,
        }
    }
    Some(id)
}

/// The family of `topic` and the entity id it names.
pub fn topic_entity(topic: &str) -> TopicEntity<'_> {
    // Split once for every family (this runs for each notification).
    let mut segments = [""; MAX_PATTERN_SEGMENTS];
    let mut n = 0;
    for (slot, s) in segments.iter_mut().zip(topic.split('.')) {
        *slot = s;
        n += 1;
    }
    let area = segments
        .get(1)
        .filter(|_| n > 1)
        .and_then(|name| AREAS.iter().find(|a| a.name.eq_ignore_ascii_case(name)));
    for (family, pattern) in area.map(|a| a.families.as_slice()).unwrap_or_default() {
        if let Some(id) = capture(pattern, &segments[..n]) {
            return TopicEntity {
                family: Some(family),
                id,
            };
        }
    }
    // An unknown `v2` family: platform ids are UUIDs (and the emulator's
    // `q1`, `u7`): the first segment with a digit is the id; words are not.
    let id = topic.strip_prefix("v2.").and_then(|rest| {
        rest.split('.')
            .skip(1)
            .find(|s| id_like(s) && s.bytes().any(|b| b.is_ascii_digit()))
    });
    TopicEntity { family: None, id }
}

/// The id a topic names: the conversation of
/// `v2.detail.events.conversation.{id}.…` and `v2.conversations.chats.{id}.…`,
/// the user of `v2.users.{id}.…`, the queue of `v2.routing.queues.{id}.…`,
/// the audited entity of `v2.audits.entitytype.{type}.entityid.{id}`, ...
pub fn topic_id(topic: &str) -> Option<&str> {
    topic_entity(topic).id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_fits_the_split_and_names_its_area() {
        for f in FAMILIES {
            assert!(f.pattern.split('.').count() <= MAX_PATTERN_SEGMENTS, "{}", f.pattern);
            let area = f.pattern.split('.').nth(1).unwrap_or_default();
            assert!(
                !area.is_empty() && !area.starts_with('{') && area != "*",
                "{}: a family is found by its second segment",
                f.pattern
            );
        }
        let listed: usize = AREAS.iter().map(|a| a.families.len()).sum();
        assert_eq!(listed, FAMILIES.len(), "every family is in an area");
    }

    /// Real topic names (the platform's topic list), the id each names and
    /// what that id is.
    #[test]
    fn every_family_names_its_entity() {
        let c = "6e4bd3b6-8f3d-4e8a-9e55-3a8c1c7a0b11";
        let u = "0f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b";
        let q = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d";
        let cases: Vec<(String, Option<&str>, Names)> = vec![
            (
                format!("v2.detail.events.conversation.{c}.customer.start"),
                Some(c),
                Conversation,
            ),
            (
                format!("v2.detail.events.conversation.{c}.acd.end"),
                Some(c),
                Conversation,
            ),
            (
                format!("v2.detail.events.conversation.{c}.flow.outcome"),
                Some(c),
                Conversation,
            ),
            (format!("v2.conversations.{c}.transcription"), Some(c), Conversation),
            (format!("v2.conversations.chats.{c}.members"), Some(c), Conversation),
            (format!("v2.conversations.chats.{c}.messages"), Some(c), Conversation),
            (format!("v2.conversations.emails.{c}.messages"), Some(c), Conversation),
            (format!("v2.conversations.messages.{c}.messages"), Some(c), Conversation),
            (format!("v2.conversations.cobrowseSessions.{c}"), Some(c), Conversation),
            ("v2.conversations.chats".into(), None, Nothing),
            (
                format!("v2.users.{u}.conversations.{c}.recordings"),
                Some(c),
                Conversation,
            ),
            (
                format!("v2.users.{u}.conversations.{c}.recordings.r1"),
                Some(c),
                Conversation,
            ),
            (format!("v2.users.{u}.conversations"), Some(u), ConversationsOf),
            (format!("v2.users.{u}.conversations.calls"), Some(u), ConversationsOf),
            (format!("v2.users.{u}.conversations.chats"), Some(u), ConversationsOf),
            (format!("v2.users.{u}.conversationsummary"), Some(u), Entity),
            (format!("v2.users.{u}.presence"), Some(u), Entity),
            (format!("v2.users.{u}.routingStatus"), Some(u), Entity),
            (format!("v2.users.{u}.workforcemanagement.adherence"), Some(u), Entity),
            (format!("v2.routing.queues.{q}.conversations"), Some(q), ConversationsOf),
            (
                format!("v2.routing.queues.{q}.conversations.emails"),
                Some(q),
                ConversationsOf,
            ),
            (format!("v2.routing.queues.{q}.users"), Some(q), Entity),
            (format!("v2.analytics.queues.{q}.observations"), Some(q), Entity),
            (format!("v2.analytics.users.{u}.aggregates"), Some(u), Entity),
            ("v2.analytics.flow.f1.aggregates".into(), Some("f1"), Entity),
            (
                "v2.analytics.conversations.details.jobs.availability".into(),
                None,
                Nothing,
            ),
            ("v2.analytics.users.details.jobs.availability".into(), None, Nothing),
            ("v2.audits.entitytype.QUEUE.entityid.e-42".into(), Some("e-42"), Entity),
            ("v2.flows.instances.flow.f9".into(), Some("f9"), Entity),
            ("v2.flows.f9".into(), Some("f9"), Entity),
            ("v2.taskmanagement.workitems.queues.wq1".into(), Some("wq1"), Entity),
            ("v2.taskmanagement.workitems.w77".into(), Some("w77"), Entity),
            (
                "v2.telephony.providers.edges.trunks.t3.metrics".into(),
                Some("t3"),
                Entity,
            ),
            (
                "v2.telephony.providers.edges.e5.softwareupdate".into(),
                Some("e5"),
                Entity,
            ),
            ("v2.outbound.campaigns.cmp1.progress".into(), Some("cmp1"), Entity),
            ("v2.outbound.schedules.campaigns.cmp1".into(), Some("cmp1"), Entity),
            ("v2.outbound.settings".into(), None, Nothing),
            (
                "v2.workforcemanagement.agents.a1.adherence.explanations.x2".into(),
                Some("a1"),
                Entity,
            ),
            ("v2.system.socket_closing".into(), None, Nothing),
        ];
        for (topic, id, names) in &cases {
            let e = topic_entity(topic);
            assert_eq!((e.id, e.names()), (*id, *names), "{topic}");
            // A shape taken once serves every frame's own copy of the text.
            let again = topic.clone();
            assert_eq!(TopicShape::of(topic).entity(&again), e, "{topic}");
            if let Some(id) = TopicShape::of(topic).entity(&again).id {
                let inside = again.as_bytes().as_ptr_range().contains(&id.as_ptr());
                assert!(inside, "{topic}: the id is cut from the text given");
            }
        }
        assert_eq!(
            topic_entity(&format!("v2.users.{u}.presence")).time(),
            TimeField::ModifiedDate
        );
        assert_eq!(topic_entity(&format!("v2.users.{u}.activity")).time(), TimeField::Usual);
    }

    #[test]
    fn families_and_their_areas_match_whatever_the_case() {
        let q = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d";
        for topic in [
            format!("v2.routing.queues.{q}.conversations"),
            format!("V2.Routing.Queues.{q}.Conversations"),
            format!("v2.ROUTING.queues.{q}.conversations"),
        ] {
            let e = topic_entity(&topic);
            assert_eq!((e.id, e.names()), (Some(q), ConversationsOf), "{topic}");
            assert_eq!(
                e.family.map(|f| f.pattern),
                Some("v2.routing.queues.{id}.conversations")
            );
        }
    }

    #[test]
    fn unknown_families_keep_an_id_like_segment_never_a_word() {
        assert_eq!(topic_id("v2.somethingnew.items.i-9.changes"), Some("i-9"));
        assert_eq!(topic_id("v2.somethingnew.items.changes"), None);
        assert_eq!(topic_id("channel.metadata"), None);
        assert_eq!(topic_id("v2"), None);
        // Patterns are not topics: their placeholders and wildcards name nothing.
        assert_eq!(topic_id("v2.users.{id}.presence"), None);
        assert_eq!(topic_id("v2.routing.queues.*.conversations"), None);
        assert_eq!(topic_id("v2.conversations.chats.>"), None);
        assert_eq!(topic_id("v2.detail.events.conversation."), None);
    }
}
