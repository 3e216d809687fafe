//! Events handed to the router in the order they were committed, each
//! either to every listener whose patterns match it or, when it is a dead
//! letter sent back, to its one listener.

use std::sync::Arc;

use actix::Addr;
use cxrelay_actors::router::PublishTo;
use cxrelay_actors::{Event, Publish, Router};

/// Consecutive events for the same destination, in commit order.
enum Route {
    All(Vec<Arc<Event>>),
    To(String, Vec<Arc<Event>>),
}

/// Events grouped by destination, keeping their order.
#[derive(Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Adds events for every matching listener, or for `target` only.
    pub fn push(&mut self, target: Option<String>, events: Vec<Arc<Event>>) {
        if events.is_empty() {
            return;
        }
        match (target, self.0.last_mut()) {
            (None, Some(Route::All(v))) => v.extend(events),
            (None, _) => self.0.push(Route::All(events)),
            (Some(t), Some(Route::To(last, v))) if *last == t => v.extend(events),
            (Some(t), _) => self.0.push(Route::To(t, events)),
        }
    }

    /// Adds one event (see [`Routes::push`]).
    pub fn push_one(&mut self, target: Option<String>, event: Arc<Event>) {
        match (target, self.0.last_mut()) {
            (None, Some(Route::All(v))) => v.push(event),
            (Some(t), Some(Route::To(last, v))) if *last == t => v.push(event),
            (target, _) => self.push(target, vec![event]),
        }
    }

    /// Adds `other`'s events after these (see [`Routes::push`]).
    pub fn extend(&mut self, other: Routes) {
        for route in other.0 {
            match route {
                Route::All(events) => self.push(None, events),
                Route::To(target, events) => self.push(Some(target), events),
            }
        }
    }

    /// Hands everything to the router, in order; answers false when the
    /// router is gone.
    pub async fn deliver(self, router: &Addr<Router>) -> bool {
        for route in self.0 {
            let sent = match route {
                Route::All(events) => router.send(Publish { events }).await.map(|_| ()),
                Route::To(target, events) => router
                    .send(PublishTo {
                        listener: target.into(),
                        events,
                    })
                    .await
                    .map(|_| ()),
            };
            if sent.is_err() {
                return false;
            }
        }
        true
    }
}
