//! Tests of the channel table.

use super::channel_table::*;
use super::socket_messages::SocketOrder;
use crate::emulator::settings::notifications::NotificationSettings;
use tokio::sync::mpsc;

fn world(max_channels: usize, max_topics: usize) -> Notifications {
    Notifications::new(
        &NotificationSettings {
            max_channels,
            max_topics,
            denied_topics: vec!["v2.analytics.>".into()],
            ..NotificationSettings::default()
        },
        7,
    )
}

#[test]
fn the_channel_past_the_limit_evicts_the_oldest_idle_one() {
    let n = world(2, 10);
    let a = n.create("c", "t", "http://h")["id"].as_str().unwrap().to_string();
    let b = n.create("c", "t", "http://h")["id"].as_str().unwrap().to_string();
    // `a` has a socket: `b` (idle) goes first even though `a` is older.
    let (etx, _erx) = mpsc::channel(1);
    let (otx, mut orx) = mpsc::channel(1);
    n.attach(&a, etx, otx).unwrap();
    let c = n.create("c", "t", "http://h");
    assert!(c["connectUri"]
        .as_str()
        .unwrap()
        .starts_with("ws://h/channels/streaming-0-"));
    let ids = n.channel_ids();
    assert!(ids.contains(&a) && !ids.contains(&b), "{ids:?}");
    // Another client's channels are not counted.
    n.create("other", "t2", "http://h");
    assert_eq!(n.channel_ids().len(), 3);
    // With every channel connected, the oldest is evicted and told.
    let c = c["id"].as_str().unwrap().to_string();
    let (etx2, _erx2) = mpsc::channel(1);
    let (otx2, _orx2) = mpsc::channel(1);
    n.attach(&c, etx2, otx2).unwrap();
    n.create("c", "t", "http://h");
    assert!(!n.channel_ids().contains(&a));
    assert!(n.channel_ids().contains(&c));
    assert!(matches!(orx.try_recv(), Ok(SocketOrder::Evicted)));
}

#[test]
fn topics_are_limited_and_rejected_one_by_one() {
    let n = world(20, 3);
    let id = n.create("c", "t", "http://h")["id"].as_str().unwrap().to_string();
    let answers = n
        .subscribe(
            &id,
            "c",
            vec![
                "v2.users.u1.presence".into(),
                "v2.analytics.queues.q.observations".into(),
                "bad".into(),
            ],
            Change::Replace,
            true,
        )
        .ok()
        .unwrap();
    let states: Vec<&str> = answers.iter().map(|a| a.state).collect();
    assert_eq!(states, ["Permitted", "Rejected", "Rejected"]);
    assert!(answers[1]
        .rejection_reason
        .as_deref()
        .unwrap()
        .starts_with("missing.permissions"));
    assert_eq!(n.topics_of(&id).unwrap(), ["v2.users.u1.presence"]);
    let four: Vec<String> = (0..4).map(|i| format!("v2.users.u{i}.presence")).collect();
    assert!(matches!(
        n.subscribe(&id, "c", four, Change::Replace, true),
        Err(Refused::TooMany(4))
    ));
    let more: Vec<String> = (2..5).map(|i| format!("v2.users.u{i}.presence")).collect();
    assert!(matches!(
        n.subscribe(&id, "c", more, Change::Add, true),
        Err(Refused::TooMany(4))
    ));
    assert!(matches!(
        n.subscribe(&id, "someone-else", vec![], Change::Add, true),
        Err(Refused::NotFound)
    ));
    // Without ignoreErrors one denied topic fails the request: nothing
    // is subscribed.
    let mixed = vec![
        "v2.users.u9.presence".into(),
        "v2.analytics.queues.q.observations".into(),
    ];
    match n.subscribe(&id, "c", mixed, Change::Replace, false) {
        Err(Refused::Rejected(r)) => assert_eq!(r.len(), 1),
        _ => panic!("a denied topic must fail the request"),
    }
    assert_eq!(n.topics_of(&id).unwrap(), ["v2.users.u1.presence"]);
}

#[test]
fn routing_lists_each_topic_with_its_channels() {
    let n = world(20, 10);
    let a = n.create("c", "t", "http://h")["id"].as_str().unwrap().to_string();
    let b = n.create("c", "t", "http://h")["id"].as_str().unwrap().to_string();
    let _ = n.subscribe(&a, "c", vec!["v2.users.u1.presence".into()], Change::Replace, true);
    let _ = n.subscribe(
        &b,
        "c",
        vec!["v2.users.u1.presence".into(), "v2.users.u2.presence".into()],
        Change::Replace,
        true,
    );
    let r = n.routing(None, None);
    assert_eq!(r.topics, ["v2.users.u1.presence", "v2.users.u2.presence"]);
    assert_eq!(r.routes, vec![vec![0, 1], vec![1]]);
    assert_eq!(n.routing(Some(&b), None).routes, vec![vec![0], vec![0]]);
}
