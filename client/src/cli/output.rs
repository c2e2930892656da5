//! What `tok` prints for the daemon's answers: the token and ExecCredential JSON, the status
//! table and its JSON, the secret list, and the relative times (`in 5m`, `2m ago`) they show.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokend_protocol::clock;

use crate::timefmt::{human, rfc3339};
use crate::{DaemonStatus, SecretEntry, Token};

/// `tok secret list`: a table of names and when each was set, or `[{"name","set_at"}]`.
pub(super) fn write_secret_list(
    entries: &[SecretEntry],
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|entry| json!({ "name": entry.name, "set_at": rfc3339(entry.set_at_unix) }))
            .collect();
        return writeln!(out, "{}", serde_json::Value::Array(list));
    }
    if entries.is_empty() {
        return writeln!(out, "no secrets set (tok secret set NAME)");
    }
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(out, "{:width$}  SET", "NAME")?;
    for entry in entries {
        writeln!(
            out,
            "{:width$}  {} ({})",
            entry.name,
            rfc3339(entry.set_at_unix),
            relative(Some(entry.set_at_unix))
        )?;
    }
    Ok(())
}

/// `tok get --json`: `{"provider","token","header","expires_at"}`.
pub(super) fn token_json(token: &Token) -> serde_json::Value {
    json!({
        "provider": token.provider,
        "token": token.value.expose(),
        "header": token.header.as_ref().map(|h| h.line().expose().to_owned()),
        "expires_at": token.expires_at.map(|at| rfc3339(clock::unix_secs(at))),
    })
}

/// A `client.authentication.k8s.io/v1` `ExecCredential`; `expirationTimestamp` only when known.
pub(super) fn exec_credential(token: &Token) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    status.insert("token".to_owned(), json!(token.value.expose()));
    if let Some(at) = token.expires_at {
        status.insert(
            "expirationTimestamp".to_owned(),
            json!(rfc3339(clock::unix_secs(at))),
        );
    }
    json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    })
}

/// `tok status --json`.
pub(super) fn status_json(status: &DaemonStatus) -> serde_json::Value {
    let providers: Vec<serde_json::Value> = status
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.kind,
                "state": p.state,
                "expires_at": p.expires_at_unix.map(rfc3339),
                "expires_in_secs": p.expires_at_unix.map(secs_from_now),
                "last_refresh": p.last_refresh_unix.map(rfc3339),
                "next_refresh": p.next_refresh_unix.map(rfc3339),
                "last_error": p.last_error,
                "counters": p.counters,
                "origin": (!p.origin.is_empty()).then_some(&p.origin),
                "share": (!p.share.is_empty()).then_some(&p.share),
                "id_token_expires_at": p.id_token_expires_at_unix.map(rfc3339),
                "rotated_at": p.rotated_at_unix.map(rfc3339),
                "next_rotation": p.next_rotation_unix.map(rfc3339),
                "rotation_error": p.rotation_error,
            })
        })
        .collect();
    json!({
        "endpoint": status.endpoint,
        "config": status.config,
        "store": (!status.store.is_empty()).then_some(&status.store),
        "fleet": (!status.fleet.is_empty()).then_some(&status.fleet),
        "providers": providers,
        "proxies": status.proxies,
        "token_files": status
            .token_files
            .iter()
            .map(|f| json!({
                "provider": f.provider,
                "path": f.path,
                "format": f.format,
                "written_at": f.written_at_unix.map(rfc3339),
                "error": f.error,
            }))
            .collect::<Vec<_>>(),
    })
}

/// Seconds from now until `secs` (negative when past).
fn secs_from_now(secs: u64) -> i64 {
    let now = clock::unix_now();
    i64::try_from(secs).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0)
}

/// `5m ago` / `now` / `in 5m` / `-`.
fn relative(at_unix: Option<u64>) -> String {
    match at_unix {
        None => "-".to_owned(),
        Some(secs) => {
            let delta = secs_from_now(secs);
            let span = human(Duration::from_secs(delta.unsigned_abs()));
            match delta {
                0 => "now".to_owned(),
                1.. => format!("in {span}"),
                _ => format!("{span} ago"),
            }
        }
    }
}

/// `in 5m` / `expired` / `-`.
fn expires_in(expires_at_unix: Option<u64>) -> String {
    let Some(secs) = expires_at_unix else {
        return "-".to_owned();
    };
    let left = match clock::from_unix_secs(secs) {
        // Compared with now to the nanosecond: a token that expires this second has expired.
        Some(at) => match at.duration_since(SystemTime::now()) {
            Ok(left) => left,
            Err(_) => return "expired".to_owned(),
        },
        // Later than this platform's clock can represent.
        None => Duration::from_secs(secs.saturating_sub(clock::unix_now())),
    };
    format!("in {}", human(left))
}

/// `tok status`: endpoint, config, store, and a table of the providers.
pub(super) fn write_status_table(
    status: &DaemonStatus,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "endpoint: {}", status.endpoint)?;
    writeln!(out, "config:   {}", status.config)?;
    if !status.store.is_empty() {
        writeln!(out, "store:    {}", status.store)?;
    }
    if !status.fleet.is_empty() {
        writeln!(out, "fleet:    {}", status.fleet)?;
    }
    if status.providers.is_empty() {
        writeln!(out, "no providers configured")?;
        return Ok(());
    }
    let rows: Vec<[String; 7]> = status
        .providers
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.kind.clone(),
                // A shared provider says where its token came from: the fleet or upstream.
                if p.share.is_empty() || p.origin.is_empty() {
                    p.state.as_str().to_owned()
                } else {
                    format!("{} ({})", p.state.as_str(), p.origin)
                },
                expires_in(p.expires_at_unix),
                relative(p.last_refresh_unix),
                relative(p.next_refresh_unix),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    write_table(
        [
            "NAME",
            "KIND",
            "STATE",
            "EXPIRES",
            "LAST REFRESH",
            "NEXT REFRESH",
            "LAST ERROR",
        ],
        &rows,
        out,
    )?;
    let rotating: Vec<[String; 4]> = status
        .providers
        .iter()
        .filter(|p| {
            p.rotated_at_unix.is_some()
                || p.next_rotation_unix.is_some()
                || p.rotation_error.is_some()
        })
        .map(|p| {
            [
                p.name.clone(),
                relative(p.rotated_at_unix),
                relative(p.next_rotation_unix),
                p.rotation_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !rotating.is_empty() {
        writeln!(out)?;
        write_table(
            ["ROTATED KEY", "ROTATED", "NEXT ROTATION", "ROTATION ERROR"],
            &rotating,
            out,
        )?;
    }
    if !status.proxies.is_empty() {
        writeln!(out)?;
        let rows: Vec<[String; 6]> = status
            .proxies
            .iter()
            .map(|p| {
                [
                    p.provider.clone(),
                    p.listen.clone(),
                    p.upstream.clone(),
                    p.requests.to_string(),
                    p.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    p.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_table(
            [
                "PROXY",
                "LISTEN",
                "UPSTREAM",
                "REQUESTS",
                "LAST STATUS",
                "ERROR",
            ],
            &rows,
            out,
        )?;
    }
    if !status.token_files.is_empty() {
        writeln!(out)?;
        let rows: Vec<[String; 5]> = status
            .token_files
            .iter()
            .map(|f| {
                [
                    f.provider.clone(),
                    f.path.clone(),
                    f.format.clone(),
                    relative(f.written_at_unix),
                    f.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_table(
            ["TOKEN FILE", "PATH", "FORMAT", "WRITTEN", "ERROR"],
            &rows,
            out,
        )?;
    }
    Ok(())
}

/// Left-aligned columns two spaces apart, the header first.
fn write_table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let header = header.map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_credential_has_the_v1_shape() {
        let mut token = Token {
            provider: "k".to_owned(),
            value: crate::Secret::new("t0k".to_owned()),
            header: None,
            expires_at: None,
        };
        let value = exec_credential(&token);
        assert_eq!(value["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(value["kind"], "ExecCredential");
        assert_eq!(value["status"]["token"], "t0k");
        assert!(value["status"].get("expirationTimestamp").is_none());
        token.expires_at = clock::from_unix_secs(1_700_000_000);
        let value = exec_credential(&token);
        assert_eq!(
            value["status"]["expirationTimestamp"],
            "2023-11-14T22:13:20Z"
        );
    }
}
