//! `subject` templates: the NATS subject each event is published to, from
//! its topic, key and source.
//!
//! A subject is tokens separated by `.`; a token cannot be empty or hold
//! whitespace, and `*` and `>` are wildcards (a published subject must have
//! none). Literal text is checked when the config is loaded; values come
//! from events and are sanitised: `{topic}` keeps its dots (its segments
//! become tokens, so `cxrelay.{topic}` maps topic patterns onto subject
//! filters unchanged), `{key}`, `{source}` and `{listener}` are one token
//! each (a dot in them becomes `_`).

use cxrelay_actors::Event;

/// The longest a token from a value may be, in bytes.
const MAX_TOKEN_BYTES: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Topic,
    Key,
    Source,
    Listener,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(Field),
}

/// A parsed `subject` template, e.g. `cxrelay.{topic}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    pieces: Vec<Piece>,
    /// The literal tokens before the first placeholder (for the stream's
    /// default subject filter).
    literal_head: Vec<String>,
}

impl SubjectTemplate {
    /// Parses and checks a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(format!("`}}` without `{{` in `{text}`")),
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Literal(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| format!("`{{` without `}}` in `{text}`"))?;
                    let field = match &after[..end] {
                        "topic" => Field::Topic,
                        "key" => Field::Key,
                        "source" => Field::Source,
                        "listener" => Field::Listener,
                        other => {
                            return Err(format!(
                            "unknown placeholder `{{{other}}}` (known: {{topic}}, {{key}}, {{source}}, {{listener}})"
                        ))
                        }
                    };
                    pieces.push(Piece::Field(field));
                    rest = &after[end + 1..];
                }
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        // Check the literal text as it will be tokenised: placeholders
        // stand for one valid token.
        let shape: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(s) => s.as_str(),
                Piece::Field(_) => "X",
            })
            .collect();
        for token in shape.split('.') {
            if token.is_empty() {
                return Err(format!("`{text}` has an empty token (`..`, or a `.` at either end)"));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "`{}` has whitespace or a control character",
                    text.escape_debug()
                ));
            }
            if token.contains(['*', '>']) {
                return Err(format!(
                    "`{text}` has a wildcard (`*` or `>`): events are published to one subject"
                ));
            }
        }
        let mut literal_head = Vec::new();
        let mut head = String::new();
        for p in &pieces {
            match p {
                Piece::Literal(s) => head.push_str(s),
                Piece::Field(_) => {
                    // Only whole tokens before the placeholder's token.
                    head.truncate(head.rfind('.').map_or(0, |i| i + 1));
                    break;
                }
            }
        }
        if pieces.iter().all(|p| matches!(p, Piece::Literal(_))) {
            head.push('.');
        }
        literal_head.extend(head.split('.').filter(|t| !t.is_empty()).map(str::to_string));
        Ok(SubjectTemplate { pieces, literal_head })
    }

    /// The subject filter that captures every subject this template can
    /// render (`cxrelay.{topic}` gives `cxrelay.>`), or `None` when it
    /// starts with a placeholder (a stream then needs `stream_subjects`).
    pub fn filter(&self) -> Option<String> {
        if self.pieces.iter().all(|p| matches!(p, Piece::Literal(_))) {
            return Some(self.literal_head.join("."));
        }
        (!self.literal_head.is_empty()).then(|| format!("{}.>", self.literal_head.join(".")))
    }

    /// The subject for `ev`.
    pub fn render(&self, ev: &Event, listener: &str) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.pieces {
            match p {
                Piece::Literal(s) => out.push_str(s),
                Piece::Field(Field::Topic) => {
                    for (i, token) in ev.topic.split('.').enumerate() {
                        if i > 0 {
                            out.push('.');
                        }
                        push_token(&mut out, token);
                    }
                }
                Piece::Field(Field::Key) => push_token(&mut out, ev.key.as_deref().unwrap_or("")),
                Piece::Field(Field::Source) => push_token(&mut out, &ev.source),
                Piece::Field(Field::Listener) => push_token(&mut out, listener),
            }
        }
        out
    }
}

/// Appends `value` as one subject token: `.`, `*`, `>`, whitespace and
/// control characters become `_`, empty becomes `_`, cut to
/// [`MAX_TOKEN_BYTES`] on a character boundary.
fn push_token(out: &mut String, value: &str) {
    let start = out.len();
    for c in value.chars() {
        if out.len() - start + c.len_utf8() > MAX_TOKEN_BYTES {
            break;
        }
        let bad = matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control();
        out.push(if bad { '_' } else { c });
    }
    if out.len() == start {
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(topic: &str, key: Option<&str>, source: &str) -> Event {
        Event::builder(source, topic).key_opt(key.map(str::to_string)).build()
    }

    #[test]
    fn renders_topics_as_tokens_and_values_as_one_token() {
        let t = SubjectTemplate::parse("cx.{listener}.{source}.{key}.{topic}").unwrap();
        let e = ev("v2.users.abc.presence", Some("k.1"), "gen");
        assert_eq!(t.render(&e, "wh"), "cx.wh.gen.k_1.v2.users.abc.presence");
        assert_eq!(t.filter().as_deref(), Some("cx.>"));
        // Values cannot add wildcards, spaces or empty tokens.
        let e = ev("a..b *.>", None, "s rc");
        assert_eq!(t.render(&e, "w>"), "cx.w_.s_rc._.a._.b__._");
        let long = "é".repeat(200);
        let rendered = t.render(&ev("t", Some(&long), "s"), "l");
        let key = rendered.split('.').nth(3).unwrap();
        assert!(key.len() <= MAX_TOKEN_BYTES && key.chars().all(|c| c == 'é'), "{key}");
    }

    #[test]
    fn filters_capture_what_is_rendered() {
        assert_eq!(SubjectTemplate::parse("a.b").unwrap().filter().as_deref(), Some("a.b"));
        assert_eq!(
            SubjectTemplate::parse("a.b{topic}").unwrap().filter().as_deref(),
            Some("a.>")
        );
        assert_eq!(SubjectTemplate::parse("{topic}").unwrap().filter(), None);
        let t = SubjectTemplate::parse("events.{source}-x.{topic}").unwrap();
        assert_eq!(t.filter().as_deref(), Some("events.>"));
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("a..{topic}", "empty token"),
            (".a", "empty token"),
            ("a.*", "wildcard"),
            ("a.>", "wildcard"),
            ("a b.{topic}", "whitespace"),
            ("a.{nope}", "unknown placeholder"),
            ("a.{topic", "without `}`"),
            ("a}", "without `{`"),
        ] {
            let e = SubjectTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
