//! The four hosts of the platform, as the emulator serves them: login
//! (`login.<region>`), API (`api.<region>`), streaming (the WebSocket
//! `connectUri`s) and downloads (presigned URLs on a storage host). Each is
//! its own port, and each refuses what belongs to another, so a client that
//! sends a request (or its bearer token) to the wrong one is caught.

use std::net::SocketAddr;

/// Which host a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `/oauth/token` only.
    Login,
    /// `/api/v2/...` and the emulator's own `/_emulator/...` control.
    Api,
    /// `/channels/{id}` WebSockets; the URL is the authorisation.
    Streaming,
    /// `/downloads/...` behind signed URLs; the URL is the authorisation.
    Downloads,
}

/// Where each host listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddrs {
    /// The API host.
    pub api: SocketAddr,
    /// The login host.
    pub login: SocketAddr,
    /// The streaming (WebSocket) host.
    pub streaming: SocketAddr,
    /// The download host.
    pub downloads: SocketAddr,
}

impl HostAddrs {
    /// The role of a local address (`None`: not one of ours).
    pub fn role_of(&self, local: SocketAddr) -> Option<Role> {
        [
            (self.api, Role::Api),
            (self.login, Role::Login),
            (self.streaming, Role::Streaming),
            (self.downloads, Role::Downloads),
        ]
        .into_iter()
        .find(|(a, _)| a.port() == local.port())
        .map(|(_, r)| r)
    }

    /// `http://host:port` of the API.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// `http://host:port` of the login host.
    pub fn login_url(&self) -> String {
        format!("http://{}", self.login)
    }

    /// `ws://host:port` of the streaming host.
    pub fn streaming_url(&self) -> String {
        format!("ws://{}", self.streaming)
    }

    /// `http://host:port` of the download host.
    pub fn downloads_url(&self) -> String {
        format!("http://{}", self.downloads)
    }
}

/// Whether `path` is served by a host of `role`.
pub fn serves(role: Role, path: &str) -> bool {
    match role {
        Role::Login => path == "/oauth/token",
        Role::Api => path.starts_with("/api/") || path.starts_with("/_emulator"),
        Role::Streaming => path.starts_with("/channels/"),
        Role::Downloads => path.starts_with("/downloads/"),
    }
}

/// The other hosts' ports next to the API's: the next three when the API
/// port is fixed (so `cxrelay emulator --listen :9090` gives login 9091,
/// streaming 9092, downloads 9093), any free port otherwise.
pub fn sibling_ports(api_port: u16) -> [u16; 3] {
    if api_port == 0 || api_port > u16::MAX - 3 {
        [0, 0, 0]
    } else {
        [api_port + 1, api_port + 2, api_port + 3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_serves_its_own_paths_only() {
        assert!(serves(Role::Login, "/oauth/token") && !serves(Role::Api, "/oauth/token"));
        assert!(serves(Role::Api, "/api/v2/notifications/channels"));
        assert!(!serves(Role::Api, "/downloads/exports/x") && serves(Role::Downloads, "/downloads/exports/x"));
        assert!(serves(Role::Streaming, "/channels/streaming-0-1") && !serves(Role::Api, "/channels/x"));
        assert_eq!(sibling_ports(9090), [9091, 9092, 9093]);
        assert_eq!(sibling_ports(0), [0, 0, 0]);
    }
}
