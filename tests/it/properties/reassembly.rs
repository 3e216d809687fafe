//! Properties of notification frame reassembly.

use super::*;

fn piece_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max.min(64)),
        // Large pieces, cheap to make: one byte repeated.
        (any::<u8>(), 0..max).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn piece(max: usize) -> impl Strategy<Value = Piece> {
    prop_oneof![
        1 => piece_bytes(max).prop_map(Piece::FirstText),
        1 => piece_bytes(max).prop_map(Piece::FirstBinary),
        3 => piece_bytes(max).prop_map(Piece::Continue),
        1 => piece_bytes(max).prop_map(Piece::Last),
    ]
}

#[test]
fn reassembly_holds_at_most_its_limit_on_any_piece_sequence() {
    let limits = prop_oneof![1usize..300, 60_000usize..70_000, Just(200_000)];
    let case = limits.prop_flat_map(|limit| (Just(limit), vec(piece(limit / 2 + 2), 0..40)));
    check("reassembly_sequences", 256, case, |(limit, pieces)| {
        check_reassembly(limit, &pieces).map(drop)
    });
}

#[test]
fn reassembly_puts_a_split_message_back_together() {
    let case = (1usize..5000, any::<bool>()).prop_flat_map(|(limit, binary)| {
        (
            Just(limit),
            Just(binary),
            vec(any::<u8>(), 0..limit + limit / 4),
            vec(0usize..6000, 0..10),
        )
    });
    check("reassembly_round_trip", 256, case, |(limit, binary, message, cuts)| {
        let mut points: Vec<usize> = cuts.into_iter().filter(|&c| c <= message.len()).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for to in points.into_iter().chain([message.len()]) {
            let bytes = message[from..to].to_vec();
            pieces.push(match pieces.len() {
                0 if binary => Piece::FirstBinary(bytes),
                0 => Piece::FirstText(bytes),
                _ => Piece::Continue(bytes),
            });
            from = to;
        }
        // The last piece closes the message (an empty one if it was also
        // the first).
        match pieces.pop() {
            Some(Piece::Continue(b)) => pieces.push(Piece::Last(b)),
            Some(first) => pieces.extend([first, Piece::Last(Vec::new())]),
            None => unreachable!("a piece per message at least"),
        }
        let answers = check_reassembly(limit, &pieces)?;
        let want = if message.len() <= limit {
            cxrelay::sources::notifications::reassembly::Assembled::Complete(message.clone().into(), binary)
        } else {
            cxrelay::sources::notifications::reassembly::Assembled::Oversized(
                message[..message.len().min(REASSEMBLY_PREFIX)].to_vec().into(),
                message.len(),
            )
        };
        match answers.last() {
            Some(a) if *a == want => Ok(()),
            other => Err(format!("ended with {other:?}")),
        }
    });
}
