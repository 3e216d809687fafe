//! Where an org's API and login live.

/// Base URLs of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    /// e.g. `https://api.mypurecloud.com`
    pub api: String,
    /// e.g. `https://login.mypurecloud.com`
    pub login: String,
}

impl Hosts {
    /// Hosts of region domain `environment` (`mypurecloud.com`,
    /// `mypurecloud.ie`, `usw2.pure.cloud`, ...), with explicit overrides
    /// taking precedence (proxies, the emulator, tests). Trailing slashes
    /// are removed.
    pub fn resolve(environment: &str, api_url: Option<&str>, login_url: Option<&str>) -> Hosts {
        let domain = environment.trim().trim_start_matches("https://").trim_end_matches('/');
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

    /// Both hosts at one base URL (the bundled emulator).
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
}
