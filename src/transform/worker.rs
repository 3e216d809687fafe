//! The pool worker that runs transforms on chunks of events.

use std::sync::Arc;

use bytes::Bytes;

use cxrelay_actors::pool::Worker;
use cxrelay_actors::Event;

use super::TransformSpec;

/// A chunk of one listener's events and what to do to them.
pub struct TransformJob {
    /// The listener's transforms.
    pub spec: Arc<TransformSpec>,
    /// The events, in order.
    pub events: Vec<Arc<Event>>,
}

/// Per event: the transformed event, or why it was refused.
pub type TransformOutput = Vec<Result<Arc<Event>, String>>;

/// Runs transforms; holds no state worth keeping, but is recycled like any
/// worker so that whatever a transform leaks is bounded.
#[derive(Default)]
pub struct TransformWorker;

impl Worker for TransformWorker {
    type Job = TransformJob;
    type Output = TransformOutput;

    fn run(&mut self, job: &TransformJob) -> TransformOutput {
        // A chunk's records are written into one buffer that the events
        // cut from it share: one allocation per chunk rather than two per
        // record, freed by the sink's thread once it has written the
        // chunk's events, which it takes and drops together.
        let spec = &job.spec;
        let room = job.events.iter().map(|ev| spec.expected_size(ev.payload.len())).sum();
        let mut buf = Vec::with_capacity(room);
        let spans: Vec<_> = job
            .events
            .iter()
            .map(|ev| {
                let start = buf.len();
                spec.append(&ev.payload, &mut buf)
                    .map(|()| start..buf.len())
                    .map_err(|e| e.to_string())
            })
            .collect();
        let all = Bytes::from(buf);
        spans
            .into_iter()
            .zip(&job.events)
            .map(|(span, ev)| span.map(|r| Arc::new(ev.with_payload(all.slice(r)))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> Arc<Event> {
        Arc::new(Event::builder("s", "t").payload(payload.as_bytes().to_vec()).build())
    }

    #[test]
    fn a_refused_record_leaves_nothing_in_the_chunk_its_neighbours_share() {
        let spec = TransformSpec {
            flatten: true,
            ..Default::default()
        };
        // The bad record fails after some of it has been written.
        let job = TransformJob {
            spec: Arc::new(spec),
            events: vec![
                event(r#"{"a":{"b":1}}"#),
                event(r#"{"c":{"d":2},"e":}"#),
                event(r#"{"f":{"g":3}}"#),
            ],
        };
        let out = TransformWorker.run(&job);
        let payload = |i: usize| match &out[i] {
            Ok(ev) => String::from_utf8(ev.payload.to_vec()).unwrap_or_default(),
            Err(e) => format!("refused: {e}"),
        };
        assert_eq!(payload(0), r#"{"a.b":1}"#);
        assert!(
            payload(1).starts_with("refused: payload is not valid JSON"),
            "{}",
            payload(1)
        );
        assert_eq!(payload(2), r#"{"f.g":3}"#);
        // The neighbours are cut from one buffer, the third right after
        // the first: the refused record's partial output is not between.
        let (Ok(first), Ok(third)) = (&out[0], &out[2]) else {
            panic!("a neighbour was refused");
        };
        let first_end = first.payload.as_ptr_range().end;
        assert_eq!(third.payload.as_ptr(), first_end, "one buffer, nothing left between");
    }
}
