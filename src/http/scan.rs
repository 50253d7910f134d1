//! `GET /v1/kv?prefix=P&start=A&end=B&match=GLOB&limit=N&cursor=C&values=true`:
//! keys in byte order, a page at a time (see `store::scan`).
//!
//! The cursor is the last key the page examined, hex-encoded behind a version
//! tag: opaque to clients, stateless for the server, and valid across restarts.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode};

use super::{AppState, error::ApiError, input, json_response};
use crate::store::{glob::Glob, scan::Scan};

/// Tags the cursor format, so a future format can tell old cursors apart.
const CURSOR_TAG: &str = "k1.";

pub fn scan(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let limits = &state.limits;
    let mut scan = Scan {
        limit: limits.scan_limit,
        max_examined: limits.max_scan_examined,
        ..Scan::default()
    };
    let mut values = true;
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in input::url_pairs(req.query_string()) {
        if seen.iter().any(|seen| *seen == name) {
            return Err(ApiError::InvalidQuery(format!("{name} is given twice")));
        }
        match &*name {
            "prefix" => scan.prefix = value.as_bytes().to_vec(),
            "start" => scan.start = Some(value.as_bytes().to_vec()),
            "end" => scan.end = Some(value.as_bytes().to_vec()),
            "match" => scan.pattern = Some(Glob::new(value.as_bytes())),
            "cursor" => scan.after = Some(decode_cursor(&value)?),
            "limit" => scan.limit = parse_limit(&value, limits.max_scan_limit)?,
            "values" => {
                values = match &*value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::InvalidQuery(format!(
                            "values must be true or false, got {value:?}"
                        )));
                    }
                }
            }
            _ => {
                return Err(ApiError::InvalidQuery(format!(
                    "unknown parameter {name:?}: a scan takes prefix, start, end, match, \
                     limit, cursor and values"
                )));
            }
        }
        seen.push(name.into_owned());
    }
    let page = state.store.scan(&scan);
    let mut out = String::with_capacity(32 + page.items.len() * 64);
    out.push_str(r#"{"items":["#);
    for (index, entry) in page.items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(r#"{"key":"#);
        out.push_str(&serde_json::to_string(entry.key()).expect("a string serializes"));
        if values {
            out.push_str(r#","value":"#);
            out.push_str(std::str::from_utf8(entry.value()).expect("stored JSON is UTF-8"));
        }
        out.push_str(r#","version":"#);
        out.push_str(&entry.version().to_string());
        out.push('}');
    }
    out.push_str(r#"],"next_cursor":"#);
    match page.next {
        Some(key) => {
            out.push('"');
            out.push_str(&encode_cursor(&key));
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push('}');
    Ok(json_response(StatusCode::OK, out))
}

fn parse_limit(text: &str, most: usize) -> Result<usize, ApiError> {
    match text.parse::<usize>() {
        Ok(limit) if (1..=most).contains(&limit) => Ok(limit),
        _ => Err(ApiError::InvalidQuery(format!(
            "limit must be a whole number from 1 to {most}, got {text:?}"
        ))),
    }
}

fn encode_cursor(key: &[u8]) -> String {
    let mut out = String::with_capacity(CURSOR_TAG.len() + key.len() * 2);
    out.push_str(CURSOR_TAG);
    for byte in key {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn decode_cursor(cursor: &str) -> Result<Vec<u8>, ApiError> {
    let malformed = || {
        ApiError::InvalidCursor(format!(
            "malformed cursor {:?}: pass back a next_cursor as it was given",
            cursor.chars().take(40).collect::<String>()
        ))
    };
    let hex = cursor.strip_prefix(CURSOR_TAG).ok_or_else(malformed)?;
    if hex.len() % 2 != 0 || hex.is_empty() {
        return Err(malformed());
    }
    let byte = |at: usize| {
        let digits = hex
            .get(at..at + 2)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        digits.and_then(|digits| u8::from_str_radix(digits, 16).ok())
    };
    (0..hex.len())
        .step_by(2)
        .map(|at| byte(at).ok_or_else(malformed))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_malformed_ones_are_refused() {
        for key in [&b"a"[..], "clé/%2F".as_bytes(), &[0u8, 255][..]] {
            assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        }
        for bad in ["", "k1.", "k1.0", "k1.zz", "x1.61", "61", "k1.6é"] {
            assert!(
                matches!(decode_cursor(bad), Err(ApiError::InvalidCursor(_))),
                "{bad:?}"
            );
        }
    }
}
