//! Where an org's API and login live.

/// Base URLs of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    /// e.g. `https://api.mypurecloud.com`
    pub api: String,
    /// e.g. `https://login.mypurecloud.com`
    pub login: String,
}

/// Host prefixes people copy along with the region domain: the API and
/// login hosts, and the web app's. `api.mypurecloud.com` names the region
/// `mypurecloud.com`, not a region `api.mypurecloud.com`.
const HOST_PREFIXES: &[&str] = &["api.", "login.", "apps."];

/// The region domain an `environment` value names: `mypurecloud.com` as
/// given, or as copied from a URL or host name (`https://api.mypurecloud.com/`,
/// `login.mypurecloud.ie`). An error says what is wrong and what to write
/// instead.
pub fn region_domain(environment: &str) -> Result<String, String> {
    let given = environment.trim();
    let mut domain = given.to_ascii_lowercase();
    for scheme in ["https://", "http://", "wss://"] {
        if let Some(rest) = domain.strip_prefix(scheme) {
            domain = rest.to_string();
        }
    }
    let domain = domain.trim_end_matches('/');
    let domain = HOST_PREFIXES
        .iter()
        .find_map(|p| domain.strip_prefix(p))
        .unwrap_or(domain);
    let fix = "write the region domain alone, e.g. `mypurecloud.com`, `mypurecloud.ie` or `usw2.pure.cloud` (set `api_url`/`login_url` for anything else)";
    if domain.is_empty() {
        return Err(format!("`{given}` names no region; {fix}"));
    }
    let well_formed = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if well_formed {
        Ok(domain.to_string())
    } else {
        Err(format!("`{given}` is not a region domain; {fix}"))
    }
}

impl Hosts {
    /// Hosts of region domain `environment` (`mypurecloud.com`,
    /// `mypurecloud.ie`, `usw2.pure.cloud`, ...; a copied `api.`/`login.`
    /// host or URL names its region, see [`region_domain`]), with explicit
    /// overrides taking precedence (proxies, the emulator, tests). Trailing
    /// slashes are removed.
    pub fn resolve(environment: &str, api_url: Option<&str>, login_url: Option<&str>) -> Hosts {
        // The config check refuses what `region_domain` refuses; an
        // embedder skipping it gets the value as written.
        let domain = region_domain(environment).unwrap_or_else(|_| {
            environment
                .trim()
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .into()
        });
        let api = api_url
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://api.{domain}"));
        let login = login_url
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://login.{domain}"));
        Hosts {
            api: api.trim_end_matches('/').to_string(),
            login: login.trim_end_matches('/').to_string(),
        }
    }

    /// Both hosts at one base URL (a proxy or a test server serving both).
    pub fn single(base: &str) -> Hosts {
        let base = base.trim_end_matches('/').to_string();
        Hosts {
            api: base.clone(),
            login: base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_overrides() {
        let h = Hosts::resolve("mypurecloud.ie", None, None);
        assert_eq!(h.api, "https://api.mypurecloud.ie");
        assert_eq!(h.login, "https://login.mypurecloud.ie");
        let h = Hosts::resolve("usw2.pure.cloud", Some("http://proxy:8080/"), None);
        assert_eq!(
            (h.api.as_str(), h.login.as_str()),
            ("http://proxy:8080", "https://login.usw2.pure.cloud")
        );
    }

    #[test]
    fn a_copied_api_or_login_host_names_its_region() {
        for given in [
            "api.mypurecloud.com",
            "login.mypurecloud.com",
            "apps.mypurecloud.com",
            "https://api.mypurecloud.com/",
            "HTTPS://API.MyPureCloud.com",
            " mypurecloud.com ",
        ] {
            let h = Hosts::resolve(given, None, None);
            assert_eq!(
                (h.api.as_str(), h.login.as_str()),
                ("https://api.mypurecloud.com", "https://login.mypurecloud.com"),
                "{given}"
            );
        }
        assert_eq!(region_domain("api.usw2.pure.cloud").as_deref(), Ok("usw2.pure.cloud"));
    }

    #[test]
    fn what_names_no_region_is_refused_with_the_fix() {
        for bad in [
            "",
            "api.",
            "https://",
            "mypurecloud",
            "api.mypurecloud.com/api/v2",
            "mypurecloud.com:443",
            "my purecloud.com",
            "..com",
        ] {
            let e = region_domain(bad).expect_err(bad);
            assert!(e.contains("e.g. `mypurecloud.com`"), "{bad}: {e}");
        }
    }
}
