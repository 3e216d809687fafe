//! Webhook bodies that arrive in several pieces: gathered whole before the
//! signature is checked, and bounded by `max_body_bytes` as they arrive.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;
use crate::webhook::{bare, env, file_listener, output_ids, verifier, webhook_config};

/// POSTs `body` with chunked transfer encoding, one HTTP chunk per piece
/// (each reaches the handler as a piece of its own), and answers the status.
fn post_in_pieces(addr: std::net::SocketAddr, signature: &str, pieces: &[&[u8]]) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST /ingest/eventbridge HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: {signature}\r\n\r\n"
    )
    .into_bytes();
    for p in pieces {
        req.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        req.extend_from_slice(p);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer);
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_body_in_several_pieces_is_gathered_whole_and_bounded_as_it_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start_with(dir, &webhook_config(dir, "", &file_listener(dir)), &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    // The signature covers the whole body: a 202 means the pieces were
    // put together in order, byte for byte.
    let body = bare(7).into_bytes();
    let sig = verifier().sign(&body);
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    assert_eq!(post_in_pieces(p.addr, &sig, &[a, b, c]), 202);
    // One piece whole is taken as it is.
    let one = bare(8).into_bytes();
    assert_eq!(post_in_pieces(p.addr, &verifier().sign(&one), &[&one]), 202);
    wait_until("both events in the file", Duration::from_secs(20), || {
        let ids = output_ids(dir);
        ids.contains(&"evt-7".to_string()) && ids.contains(&"evt-8".to_string())
    });
    // Past `max_body_bytes` (16 KiB here) with no declared length: refused
    // once the pieces add up to more, whether the first piece or a later
    // one crosses it.
    let big = vec![b' '; 9000];
    let sig = verifier().sign(&[big.as_slice(), &big].concat());
    assert_eq!(post_in_pieces(p.addr, &sig, &[&big, &big]), 413);
    let huge = vec![b' '; 17000];
    assert_eq!(post_in_pieces(p.addr, &verifier().sign(&huge), &[&huge]), 413);
}
