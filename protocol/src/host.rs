//! Which hosts are loopback: the one rule behind "plain `http://` only for loopback hosts" (the
//! git and Docker credential helpers, the auth proxy's upstream, the login redirect URI).

use std::net::IpAddr;

/// `localhost`, an IPv4 loopback address (`127.0.0.0/8`) or `::1`, as a host is written in a URL
/// authority: `name`, `name:port`, `[v6]` or `[v6]:port`. `127.0.0.1.evil.example` is not.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, after)) if after.is_empty() || after.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, _port)) => name,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_with_and_without_ports() {
        for host in [
            "localhost",
            "LOCALHOST:80",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]",
            "[::1]:8443",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "[::1]x",
            "[::1",
            "",
            "example.com:80",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
