//! Rendering a lifecycle's event as a notification frame, byte by byte
//! (detail events, queue conversation events of ~1.5 KB, presence).

use super::control::RUN_IDS;
use super::lifecycles::{Life, QueueState, Step};
use crate::emulator::notifications::frames::{push_str, push_u64, push_uuid};

/// Renders one event frame.
pub(super) struct Renderer {
    pub(super) seed: u64,
    pub(super) run: u64,
    pub(super) pad_to: Option<usize>,
}

impl Renderer {
    fn quoted_id(&self, out: &mut Vec<u8>, life: &Life, k: u64) {
        out.extend_from_slice(life.text.id(k));
    }

    fn tel(&self, out: &mut Vec<u8>, life: &Life) {
        out.extend_from_slice(&life.text.tel);
    }

    fn time(&self, out: &mut Vec<u8>, life: &Life, ms: i64) {
        life.text.time(&life.t, ms, out);
    }

    pub(super) fn render(&self, index: u64, life: &Life, step: Step, topic: &str, at: i64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"{\"topicName\":");
        push_str(out, topic);
        out.extend_from_slice(b",\"version\":\"2\",\"eventBody\":");
        let body_start = out.len();
        match step {
            Step::Detail(phase) => self.detail(out, life, phase, at),
            Step::Queue(state) => self.queue_conversation(out, life, state),
            Step::Presence(presence) => self.presence(out, life, presence, at),
            Step::Other => {
                out.extend_from_slice(b"{\"id\":");
                push_str(out, &life.conversation);
                out.extend_from_slice(b",\"conversationId\":");
                push_str(out, &life.conversation);
                out.extend_from_slice(b",\"eventTime\":");
                push_u64(out, at.max(0) as u64);
                out.extend_from_slice(b",\"state\":\"updated\"}");
            }
        }
        if let Some(target) = self.pad_to {
            // Pad inside the body, before its closing brace.
            let have = out.len() + 70;
            if target > have && out.last() == Some(&b'}') && out.len() > body_start + 1 {
                out.pop();
                out.extend_from_slice(b",\"cxPadding\":\"");
                out.extend(std::iter::repeat_n(b'x', target - have));
                out.extend_from_slice(b"\"}");
            }
        }
        out.extend_from_slice(b",\"metadata\":{\"CorrelationId\":\"");
        push_uuid(out, self.seed, &[RUN_IDS, self.run, index]);
        out.extend_from_slice(b"\"}}");
    }

    fn detail(&self, out: &mut Vec<u8>, life: &Life, phase: usize, at: i64) {
        // Customer phases are the customer participant's; acd the queue's;
        // user and acw the agent's.
        let participant = match phase {
            0 | 6 => 1,
            1 | 2 => 2,
            _ => 3,
        };
        out.extend_from_slice(b"{\"eventTime\":");
        push_u64(out, at.max(0) as u64);
        out.extend_from_slice(b",\"conversationId\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b",\"participantId\":");
        self.quoted_id(out, life, participant);
        out.extend_from_slice(b",\"sessionId\":");
        self.quoted_id(out, life, 10 + participant);
        out.extend_from_slice(b",\"mediaType\":\"VOICE\",\"provider\":\"Edge\",\"direction\":\"INBOUND\",\"ani\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"dnis\":\"tel:+18005550100\",\"addressFrom\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"addressTo\":\"tel:+18005550100\"");
        // After-call work events carry no division (the SDK's model).
        if phase != 5 {
            out.extend_from_slice(b",\"divisionId\":");
            self.quoted_id(out, life, 30);
        }
        if phase != 0 && phase != 6 {
            out.extend_from_slice(b",\"queueId\":");
            push_str(out, &life.queue);
        }
        if phase >= 3 && phase != 6 {
            out.extend_from_slice(b",\"userId\":");
            push_str(out, &life.user);
        }
        match phase {
            2 => {
                out.extend_from_slice(b",\"acdOutcome\":\"ANSWERED\",\"connectedDurationMs\":");
                push_u64(out, (life.t[2] - life.t[1]).max(0) as u64);
            }
            4 | 6 => {
                out.extend_from_slice(b",\"disconnectType\":\"CLIENT\",\"interactingDurationMs\":");
                push_u64(out, (life.t[3] - life.t[2]).max(0) as u64);
            }
            5 => {
                out.extend_from_slice(b",\"wrapupCode\":\"resolved\",\"wrapupNotes\":\"Customer asked about invoice ");
                push_u64(out, life.m);
                out.extend_from_slice(b"\",\"wrapupDurationMs\":");
                push_u64(out, (life.t[4] - life.t[3]).max(0) as u64);
            }
            _ => {}
        }
        out.push(b'}');
    }

    fn call(&self, out: &mut Vec<u8>, life: &Life, k: u64, connected: i64, ended: Option<i64>, other_ani: bool) {
        out.extend_from_slice(b"[{\"state\":");
        out.extend_from_slice(if ended.is_some() {
            b"\"terminated\""
        } else {
            b"\"connected\""
        });
        out.extend_from_slice(b",\"id\":");
        self.quoted_id(out, life, 10 + k);
        out.extend_from_slice(b",\"direction\":\"inbound\",\"recording\":false,\"recordingState\":\"none\",\"muted\":false,\"confined\":false,\"held\":false");
        if ended.is_some() {
            out.extend_from_slice(b",\"disconnectType\":\"peer\"");
        }
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, connected);
        if let Some(e) = ended {
            out.extend_from_slice(b",\"disconnectedTime\":");
            self.time(out, life, e);
        }
        out.extend_from_slice(b",\"provider\":\"Edge\",\"self\":");
        self.address(out, life, !other_ani);
        out.extend_from_slice(b",\"other\":");
        self.address(out, life, other_ani);
        out.extend_from_slice(b"}]");
    }

    /// A call's end as the SDK's QueueConversationEventTopicAddress: the
    /// caller (name and number) or the org's number.
    fn address(&self, out: &mut Vec<u8>, life: &Life, caller: bool) {
        if caller {
            out.extend_from_slice(b"{\"name\":\"Caller ");
            push_u64(out, life.m);
            out.extend_from_slice(b"\",\"nameRaw\":\"Caller ");
            push_u64(out, life.m);
            out.extend_from_slice(b"\",\"addressNormalized\":");
            self.tel(out, life);
            out.extend_from_slice(b",\"addressRaw\":");
            self.tel(out, life);
            out.extend_from_slice(b",\"addressDisplayable\":");
            self.tel(out, life);
            out.push(b'}');
        } else {
            out.extend_from_slice(
                b"{\"nameRaw\":\"\",\"addressNormalized\":\"tel:+18005550100\",\"addressRaw\":\"tel:+18005550100\",\"addressDisplayable\":\"(800) 555-0100\"}",
            );
        }
    }

    fn queue_conversation(&self, out: &mut Vec<u8>, life: &Life, state: QueueState) {
        let [t0, t1, t2, t3, _] = life.t;
        let ended = (state == QueueState::Ended).then_some(t3);
        out.extend_from_slice(b"{\"id\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b",\"participants\":[{\"id\":");
        self.quoted_id(out, life, 1);
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, t0);
        if let Some(e) = ended {
            out.extend_from_slice(b",\"endTime\":");
            self.time(out, life, e);
        }
        out.extend_from_slice(b",\"name\":\"Caller ");
        push_u64(out, life.m);
        out.extend_from_slice(b"\",\"purpose\":\"customer\",\"address\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"wrapupRequired\":false,\"attributes\":{\"accountNumber\":\"");
        push_u64(out, 100_000 + life.ani % 900_000);
        out.extend_from_slice(b"\",\"language\":\"en-US\"},\"calls\":");
        self.call(out, life, 1, t0, ended, false);
        out.extend_from_slice(b"},{\"id\":");
        self.quoted_id(out, life, 2);
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, t1);
        if state != QueueState::Waiting {
            out.extend_from_slice(b",\"endTime\":");
            self.time(out, life, t2);
        }
        out.extend_from_slice(b",\"name\":\"Support\",\"queueId\":");
        push_str(out, &life.queue);
        out.extend_from_slice(
            b",\"purpose\":\"acd\",\"wrapupRequired\":false,\"conversationRoutingData\":{\"queue\":{\"id\":",
        );
        push_str(out, &life.queue);
        out.extend_from_slice(
            b"},\"language\":{\"id\":\"en-US\"},\"priority\":0,\"skills\":[],\"scoredAgents\":[]},\"calls\":",
        );
        self.call(out, life, 2, t1, (state != QueueState::Waiting).then_some(t2), true);
        out.push(b'}');
        if state != QueueState::Waiting {
            out.extend_from_slice(b",{\"id\":");
            self.quoted_id(out, life, 3);
            out.extend_from_slice(b",\"connectedTime\":");
            self.time(out, life, t2);
            if let Some(e) = ended {
                out.extend_from_slice(b",\"endTime\":");
                self.time(out, life, e);
            }
            out.extend_from_slice(b",\"userId\":");
            push_str(out, &life.user);
            out.extend_from_slice(b",\"queueId\":");
            push_str(out, &life.queue);
            out.extend_from_slice(
                b",\"purpose\":\"agent\",\"wrapupRequired\":true,\"wrapupTimeoutMs\":60000,\"calls\":",
            );
            self.call(out, life, 3, t2, ended, true);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"recordingState\":\"none\",\"divisions\":[{\"division\":{\"id\":");
        self.quoted_id(out, life, 30);
        out.extend_from_slice(b"},\"entities\":[{\"id\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b"}]}]}");
    }

    fn presence(&self, out: &mut Vec<u8>, life: &Life, presence: &str, at: i64) {
        out.extend_from_slice(b"{\"source\":\"PURECLOUD\",\"presenceDefinition\":{\"id\":");
        self.quoted_id(out, life, if presence == "Available" { 40 } else { 41 });
        out.extend_from_slice(b",\"systemPresence\":");
        push_str(out, presence);
        out.extend_from_slice(b"},\"message\":\"\",\"modifiedDate\":");
        self.time(out, life, at);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::notifications::traffic::lifecycles::Lifecycles;

    fn topics(v: &[&str]) -> Vec<String> {
        let mut t: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        t.sort();
        t
    }

    fn stream(topics: &[String], n: usize) -> Vec<(String, serde_json::Value)> {
        let mut l = Lifecycles::new(3, 1_714_572_000_000, 4);
        l.set_universe(topics);
        let r = Renderer {
            seed: 3,
            run: 1,
            pad_to: None,
        };
        let mut out = Vec::new();
        let mut frame = Vec::new();
        for i in 0..n {
            let (slot, step, topic, at) = l.next().unwrap();
            let life = l.slots[slot].as_ref().unwrap();
            r.render(i as u64, life, step, &topics[topic], at, &mut frame);
            let v: serde_json::Value = serde_json::from_slice(&frame).unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&frame));
            });
            out.push((topics[topic].clone(), v));
        }
        out
    }

    #[test]
    fn lifecycles_use_the_subscribed_ids_and_are_deterministic() {
        let t = topics(&[
            "v2.routing.queues.q1.conversations",
            "v2.routing.queues.q2.conversations",
            "v2.users.u1.presence",
            "v2.detail.events.conversation.c1.customer.start",
            "v2.detail.events.conversation.c1.acd.start",
            "v2.detail.events.conversation.c1.customer.end",
        ]);
        let a = stream(&t, 200);
        assert_eq!(
            a.iter().map(|x| &x.1).collect::<Vec<_>>(),
            stream(&t, 200).iter().map(|x| &x.1).collect::<Vec<_>>()
        );
        for (topic, v) in &a {
            assert_eq!(v["topicName"].as_str().unwrap(), topic);
            // Every event names what it is about: a user in its topic, a
            // conversation in its body (a client keys events on these).
            let body = &v["eventBody"];
            assert!(
                topic.starts_with("v2.users.") || body["conversationId"].is_string() || body["id"].is_string(),
                "{topic}"
            );
            if topic.starts_with("v2.detail") {
                assert_eq!(v["eventBody"]["conversationId"], "c1");
                assert!(v["eventBody"]["eventTime"].is_i64());
            }
            if topic.starts_with("v2.routing") {
                assert!(v["eventBody"]["participants"][0]["connectedTime"].is_string());
            }
        }
        let ids: std::collections::HashSet<&str> = a
            .iter()
            .map(|x| x.1["metadata"]["CorrelationId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), a.len(), "correlation ids are unique");
        // Every subscribed topic gets traffic.
        for topic in &t {
            assert!(a.iter().any(|x| &x.0 == topic), "{topic}");
        }
    }

    #[test]
    fn conversation_events_are_about_one_and_a_half_kilobytes() {
        let t = topics(&["v2.routing.queues.6f1b2c3d-0000-4000-8000-000000000001.conversations"]);
        let events = stream(&t, 3);
        let sizes: Vec<usize> = events.iter().map(|e| e.1.to_string().len()).collect();
        assert!(sizes.iter().all(|s| (900..2200).contains(s)), "{sizes:?}");
        assert!(sizes[1] > 1300, "{sizes:?}");
    }
}
