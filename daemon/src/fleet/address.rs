//! Where the fleet's Redis (or Valkey) is: one server by URL (`redis://`, `rediss://`,
//! `redis+unix://`), or a primary found through Sentinel (`redis-sentinel://h:p,h:p/MASTER/db`,
//! `rediss-sentinel://…` with TLS to the servers). Parsed once, when the config loads.

/// A parsed `fleet.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// One server; the URL as redis-rs reads it.
    Server(String),
    /// A primary found through Sentinel.
    Sentinel {
        /// The sentinels, `host:port`.
        nodes: Vec<(String, u16)>,
        /// The name of the monitored primary.
        master: String,
        /// The database number.
        db: i64,
        /// TLS to the data servers (`rediss-sentinel://`).
        tls: bool,
    },
}

impl Address {
    /// Parses `fleet.url`; the error says what is wrong (never quoting credentials: the config
    /// refuses a URL that carries any).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(
                "it has no scheme (redis://, rediss://, redis+unix://, redis-sentinel://)"
                    .to_owned(),
            );
        };
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                let url = url::Url::parse(text).map_err(|err| format!("not a URL ({err})"))?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err("it has a user name or password in it".to_owned());
                }
                if scheme.starts_with("redis")
                    && !scheme.contains("unix")
                    && url.host_str().is_none()
                {
                    return Err("it has no host".to_owned());
                }
                Ok(Self::Server(text.to_owned()))
            }
            "redis-sentinel" | "rediss-sentinel" => {
                let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
                if hosts.contains('@') {
                    return Err("it has a user name or password in it".to_owned());
                }
                let nodes = hosts
                    .split(',')
                    .map(|node| {
                        let (host, port) = node.rsplit_once(':').unwrap_or((node, "26379"));
                        let port = port
                            .parse::<u16>()
                            .ok()
                            .filter(|port| *port != 0)
                            .ok_or_else(|| format!("sentinel {node:?} has no valid port"))?;
                        if host.is_empty() {
                            return Err(format!("sentinel {node:?} has no host"));
                        }
                        Ok((host.trim_matches(['[', ']']).to_owned(), port))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let mut parts = path.split('/');
                let master = parts.next().unwrap_or_default().to_owned();
                if master.is_empty() {
                    return Err(
                        "it names no primary: write redis-sentinel://host:port/MASTER/db"
                            .to_owned(),
                    );
                }
                let db = match parts.next() {
                    None | Some("") => 0,
                    Some(db) => db
                        .parse::<i64>()
                        .map_err(|_| format!("the database {db:?} is not a number"))?,
                };
                Ok(Self::Sentinel {
                    nodes,
                    master,
                    db,
                    tls: scheme == "rediss-sentinel",
                })
            }
            other => Err(format!("the scheme {other:?} is not a Redis one")),
        }
    }

    /// How status and logs name it (the URL carries no credentials).
    #[must_use]
    pub fn shown(&self) -> String {
        match self {
            Self::Server(url) => url.clone(),
            Self::Sentinel {
                nodes,
                master,
                db,
                tls,
            } => {
                let nodes: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                let scheme = if *tls {
                    "rediss-sentinel"
                } else {
                    "redis-sentinel"
                };
                format!("{scheme}://{}/{master}/{db}", nodes.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:6379/0"),
            Ok(Address::Server("redis://127.0.0.1:6379/0".into()))
        );
        assert!(Address::parse("rediss://cache.example.com:6380/2").is_ok());
        assert!(Address::parse("redis+unix:///run/redis.sock").is_ok());
        assert_eq!(
            Address::parse("redis-sentinel://127.0.0.1:26379,[::1]:26380/mymaster/3"),
            Ok(Address::Sentinel {
                nodes: vec![("127.0.0.1".into(), 26379), ("::1".into(), 26380)],
                master: "mymaster".into(),
                db: 3,
                tls: false,
            })
        );
        let sentinel = Address::parse("rediss-sentinel://s1:26379/m").unwrap();
        assert_eq!(sentinel.shown(), "rediss-sentinel://s1:26379/m/0");
    }

    #[test]
    fn bad_forms_say_why() {
        for (text, why) in [
            ("127.0.0.1:6379", "no scheme"),
            ("http://x/0", "not a Redis one"),
            ("redis://user:pw@host/0", "password"),
            ("redis-sentinel://u:p@s1:26379/m", "password"),
            ("redis-sentinel://s1:0/m", "no valid port"),
            ("redis-sentinel://s1:26379/", "names no primary"),
            ("redis-sentinel://s1:26379/m/x", "not a number"),
        ] {
            let err = Address::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
