//! `GET /`: the status page. One HTML document with its style and script
//! inline, all compiled into the binary: no CDN, no build step, nothing to
//! fetch but `/status`, so it works offline and behind any proxy. It shows
//! only what `/status` shows.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use base64::Engine as _;
use sha2::{Digest, Sha256};

const HTML: &str = include_str!("status_page/index.html");
const STYLE: &str = include_str!("status_page/page.css");
const SCRIPT: &str = include_str!("status_page/page.js");

/// The page and its Content-Security-Policy, put together once.
struct Page {
    html: String,
    csp: String,
}

fn page_parts() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        // The inline style and script are allowed by their hashes: nothing
        // else can run on the page, even if some text from /status were
        // ever taken for markup.
        let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()));
        Page {
            html: HTML.replacen("/*STYLE*/", STYLE, 1).replacen("/*SCRIPT*/", SCRIPT, 1),
            csp: format!(
                "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; \
                 img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                hash(STYLE),
                hash(SCRIPT)
            ),
        }
    })
}

/// `GET /`: the status page.
pub async fn page() -> HttpResponse {
    let p = page_parts();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", p.csp.as_str()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(p.html.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_whole_and_fetches_nothing_but_status() {
        let p = page_parts();
        assert!(!p.html.contains("/*STYLE*/") && !p.html.contains("/*SCRIPT*/"));
        assert!(p.html.contains(STYLE) && p.html.contains(SCRIPT));
        // Offline: no address of anything elsewhere, no external resource.
        for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(
                !p.html.contains(needle),
                "the page refers to something outside it: {needle}"
            );
        }
        assert!(
            SCRIPT.contains("fetch('status'"),
            "the page reads /status (relative: works behind a proxy)"
        );
        assert!(
            !SCRIPT.contains("innerHTML"),
            "texts from /status go in as text, never as markup"
        );
        assert!(p.csp.contains("script-src 'sha256-") && p.csp.contains("default-src 'none'"));
    }
}
