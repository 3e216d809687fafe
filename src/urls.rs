//! URLs as cxrelay compares and shows them: by parsed scheme, host and
//! port (never by text prefix), and without credentials when shown.

use awc::http::Uri;

/// Scheme, host and port of an absolute URL (the default port filled in),
/// or `None` when it is not an absolute http(s) URL.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    // `user@host` would make a text comparison lie about the host.
    if authority.as_str().contains('@') {
        return None;
    }
    Some((
        scheme,
        authority.host().to_ascii_lowercase(),
        uri.port_u16().unwrap_or(default_port),
    ))
}

/// Whether `url` is on the same origin (scheme, host, port) as `base`:
/// the test for sending a bearer token to it.
pub fn same_origin(url: &str, base: &str) -> bool {
    match (origin(url), origin(base)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `url` fit to show in status, logs and errors: no user info, no query
/// (either can carry a credential), no fragment.
pub fn redacted(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "<invalid url>".into();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return uri.path().to_string();
    };
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    let query = if uri.query().is_some() { "?…" } else { "" };
    format!("{scheme}://{host}{}{query}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_parsed_not_by_prefix() {
        let api = "http://127.0.0.1:1808";
        assert!(same_origin("http://127.0.0.1:1808/api/v2/x", api));
        assert!(!same_origin("http://127.0.0.1:18080/api/v2/x", api));
        let api = "https://api.mypurecloud.com";
        assert!(same_origin("https://API.mypurecloud.com:443/api/v2/downloads/x", api));
        assert!(!same_origin("https://api.mypurecloud.com.evil.tld/x", api));
        assert!(!same_origin("https://api.mypurecloud.com@evil.tld/x", api));
        assert!(!same_origin("http://api.mypurecloud.com/x", api));
        assert!(!same_origin("/relative", api));
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            redacted("https://user:pw@hooks.example.com:8443/in?token=s3cret#x"),
            "https://hooks.example.com:8443/in?…"
        );
        assert_eq!(redacted("http://127.0.0.1:9/x"), "http://127.0.0.1:9/x");
        assert!(!redacted("not a url ?token=abc").contains("abc"));
    }
}
