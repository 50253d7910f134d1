//! Turning request parts into validated store inputs: keys, bodies, TTLs, ETags.
//!
//! Every check that can reject a request lives here, so handlers only ever see
//! inputs within the configured limits. Nothing here touches the store.

use std::borrow::Cow;

use actix_web::{
    HttpRequest,
    http::header::{self, HeaderName, HeaderValue},
    web::{Bytes, Payload},
};
use percent_encoding::percent_decode_str;

use super::{
    Limits,
    error::{ApiError, Dialect},
};
use crate::store::Tags;

/// The key named by the rest of the path after `prefix`, percent-decoded exactly
/// once. Read from the raw URI, so `a%2Fb` is the key `a/b` and a literal `/` is
/// part of the key too.
///
/// A `%` that starts no valid escape (`%zz`, `%2`, a trailing `%`) makes the native
/// routes answer 400, as a malformed URI (RFC 3986, 2.1); the compatible routes read
/// it literally (`/kv/%zz` is the key `%zz`), as PyRustKV did.
pub fn path_key(
    req: &HttpRequest,
    prefix: &str,
    dialect: Dialect,
    limits: &Limits,
) -> Result<Box<str>, ApiError> {
    // The scope also matches its bare prefix (`/kv`), which names no key and no route.
    let raw = req
        .uri()
        .path()
        .strip_prefix(prefix)
        .ok_or_else(|| ApiError::RouteNotFound {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        })?;
    if dialect == Dialect::Native {
        check_escapes(raw)?;
    }
    let key = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::InvalidKey("key is not valid UTF-8 once percent-decoded".into()))?;
    check_key(&key, limits)?;
    Ok(key.into())
}

/// Checks that every `%` in `raw` is followed by two hex digits. A key without `%`
/// (the common case) costs one scan and no allocation, as its decoding does.
fn check_escapes(raw: &str) -> Result<(), ApiError> {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(found) = bytes[from..].iter().position(|&byte| byte == b'%') {
        let at = from + found;
        let digits = bytes.get(at + 1..at + 3);
        if !digits.is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit)) {
            let shown: String = raw[at..].chars().take(3).collect();
            return Err(ApiError::InvalidPercentEscape(format!(
                "invalid percent-escape {shown:?} in the key at byte {at}: `%` must be \
                 followed by two hex digits (write `%25` for a literal `%`)"
            )));
        }
        from = at + 3;
    }
    Ok(())
}

pub fn check_key(key: &str, limits: &Limits) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::InvalidKey("key must not be empty".into()));
    }
    if key.len() > limits.max_key_bytes {
        return Err(ApiError::KeyTooLarge {
            limit: limits.max_key_bytes,
        });
    }
    Ok(())
}

pub fn check_value(value: &[u8], limits: &Limits) -> Result<(), ApiError> {
    if value.len() > limits.max_value_bytes {
        return Err(ApiError::ValueTooLarge {
            limit: limits.max_value_bytes,
        });
    }
    Ok(())
}

/// Reads a JSON request body: media type checked first (a request without
/// Content-Type is taken as JSON), then the size, before anything is buffered past
/// the limit.
pub async fn json_body(
    req: &HttpRequest,
    payload: Payload,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    check_media_type(req)?;
    let too_large = ApiError::BodyTooLarge {
        limit: limits.max_body,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body as u64) {
        return Err(too_large);
    }
    match payload.to_bytes_limited(limits.max_body).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(error)) => Err(ApiError::BodyUnreadable(error.to_string())),
        Err(_) => Err(too_large),
    }
}

/// A JSON body as text: JSON is UTF-8 (RFC 8259, 8.1), and serde_json reading
/// bytes would skip strings without checking them.
pub fn utf8_body(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body)
        .map_err(|error| ApiError::InvalidBody(format!("body is not valid UTF-8: {error}")))
}

fn check_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default().trim();
    let essence = text.split(';').next().unwrap_or_default().trim().as_bytes();
    // Compared ignoring case in place: a lowercased copy was an allocation per write.
    let starts = |prefix: &str| {
        essence
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let ends = |suffix: &str| {
        (essence.len().checked_sub(suffix.len()))
            .is_some_and(|at| essence[at..].eq_ignore_ascii_case(suffix.as_bytes()))
    };
    let is_json = essence.eq_ignore_ascii_case(b"application/json")
        || (starts("application/") && ends("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// Validates a TTL in seconds and converts it to nanoseconds (at least 1).
pub fn ttl_nanos(seconds: f64, limits: &Limits) -> Result<u64, ApiError> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(ApiError::InvalidTtl(format!(
            "ttl must be a finite number of seconds > 0, got {seconds}"
        )));
    }
    if seconds > limits.max_ttl_secs {
        return Err(ApiError::InvalidTtl(format!(
            "ttl must be at most {} seconds, got {seconds}",
            limits.max_ttl_secs
        )));
    }
    Ok(((seconds * 1e9).ceil() as u64).max(1))
}

/// Parses `?ttl=S` from a native route's query string, if present.
pub fn query_ttl(req: &HttpRequest, limits: &Limits) -> Result<Option<u64>, ApiError> {
    let ttl = url_pairs(req.query_string()).find(|(name, _)| name == "ttl");
    let Some((_, text)) = ttl else {
        return Ok(None);
    };
    let seconds: f64 = text.parse().map_err(|_| {
        ApiError::InvalidTtl(format!("ttl must be a number of seconds, got {text:?}"))
    })?;
    ttl_nanos(seconds, limits).map(Some)
}

/// The query's name/value pairs, `+` and percent escapes decoded (borrowed where
/// there were none, so `?ttl=60` costs no allocation).
pub fn url_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    form_urlencoded::parse(query.as_bytes())
}

/// Parses `If-Match` / `If-None-Match`: `*` or a list of entity tags. Tags that are
/// not one of our versions are kept as "matches nothing". `If-Match` compares
/// strongly, so a weak tag there matches nothing; `If-None-Match` compares weakly
/// (RFC 9110, 13.1.1 and 13.1.2).
pub fn tags(req: &HttpRequest, name: HeaderName) -> Result<Option<Tags>, ApiError> {
    let Some(value) = req.headers().get(&name) else {
        return Ok(None);
    };
    let strong_only = name == header::IF_MATCH;
    tag_list(value.as_bytes(), strong_only)
        .map(Some)
        .map_err(|error| ApiError::InvalidHeader(format!("{name}: {error}")))
}

/// Parses `*` or a list of entity tags, as in `If-Match` (`strong_only`) or
/// `If-None-Match`; on error, what is wrong. Batch and transaction ops take the
/// same text in their `if_match` / `if_none_match` fields.
pub fn tag_list(text: &[u8], strong_only: bool) -> Result<Tags, String> {
    let text = text.trim_ascii();
    if text == b"*" {
        return Ok(Tags::Any);
    }
    let tags = entity_tags(text).map_err(|at| {
        let shown = String::from_utf8_lossy(&text[at..]);
        format!("not a list of quoted entity tags at {shown:?}")
    })?;
    let versions = tags
        .into_iter()
        .filter(|(weak, _)| !(strong_only && *weak))
        .filter_map(|(_, opaque)| std::str::from_utf8(opaque).ok()?.parse().ok())
        .collect();
    Ok(Tags::Versions(versions))
}

/// Splits an entity-tag list, `#( [W/] DQUOTE *etagc DQUOTE )`, into (weak, opaque)
/// pairs. The opaque part may hold commas, so the list is scanned, not split.
/// Empty list elements are allowed, as RFC 9110 (5.6.1) asks. On error: the offset.
fn entity_tags(text: &[u8]) -> Result<Vec<(bool, &[u8])>, usize> {
    let is_etagc = |byte: u8| byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80;
    let mut tags = Vec::new();
    let mut at = 0;
    loop {
        while at < text.len() && matches!(text[at], b',' | b' ' | b'\t') {
            at += 1;
        }
        if at == text.len() {
            return Ok(tags);
        }
        let start = at;
        let weak = text[at..].starts_with(b"W/");
        if weak {
            at += 2;
        }
        if text.get(at) != Some(&b'"') {
            return Err(start);
        }
        let opaque_len = text[at + 1..]
            .iter()
            .take_while(|&&byte| is_etagc(byte))
            .count();
        let close = at + 1 + opaque_len;
        if text.get(close) != Some(&b'"') {
            return Err(start);
        }
        tags.push((weak, &text[at + 1..close]));
        at = close + 1;
        while at < text.len() && matches!(text[at], b' ' | b'\t') {
            at += 1;
        }
        if at < text.len() && text[at] != b',' {
            return Err(at);
        }
    }
}

/// The `ETag` value for a version: `"N"`. Every GET and PUT answers with one, and
/// `format!` into a `String`, then parsing that into a header value, measured ~900
/// instructions of a GET's ~18,000 (callgrind).
pub fn etag(version: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(version).as_bytes();
    let mut quoted = [b'"'; 22]; // u64::MAX has 20 digits
    quoted[1..=digits.len()].copy_from_slice(digits);
    HeaderValue::from_bytes(&quoted[..digits.len() + 2]).expect("digits and quotes")
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_body: 64,
            max_ttl_secs: 100.0,
            max_headers: 8,
            max_header_bytes: 1024,
            max_batch_ops: 4,
            max_txn_ops: 4,
            scan_limit: 2,
            max_scan_limit: 4,
            max_scan_examined: 8,
        }
    }

    #[test]
    fn ttl_table() {
        let limits = limits();
        assert_eq!(ttl_nanos(1.5, &limits).unwrap(), 1_500_000_000);
        assert_eq!(ttl_nanos(1e-12, &limits).unwrap(), 1);
        assert_eq!(ttl_nanos(100.0, &limits).unwrap(), 100_000_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 100.001] {
            assert!(ttl_nanos(bad, &limits).is_err(), "{bad}");
        }
    }

    fn key_in(uri: &str, dialect: Dialect) -> Result<Box<str>, ApiError> {
        let request = TestRequest::with_uri(uri).to_http_request();
        path_key(&request, "/kv/", dialect, &limits())
    }

    #[test]
    fn keys_are_percent_decoded_once() {
        let key = |uri: &str| key_in(uri, Dialect::Native);
        assert_eq!(&*key("/kv/a%2Fb").unwrap(), "a/b");
        assert_eq!(&*key("/kv/a/b").unwrap(), "a/b");
        assert_eq!(&*key("/kv/%2541").unwrap(), "%41");
        assert_eq!(&*key("/kv/%C3%A9").unwrap(), "é");
        assert!(matches!(key("/kv/"), Err(ApiError::InvalidKey(_))));
        assert!(matches!(key("/kv/%FF"), Err(ApiError::InvalidKey(_))));
        assert!(matches!(
            key("/kv/123456789"),
            Err(ApiError::KeyTooLarge { .. })
        ));
    }

    #[test]
    fn invalid_percent_escapes_by_dialect() {
        // (path, the compatible routes' literal key); native routes refuse each one.
        let cases = [
            ("/kv/%", "%"),
            ("/kv/a%", "a%"),
            ("/kv/%2", "%2"),
            ("/kv/%zz", "%zz"),
            ("/kv/%g0", "%g0"),
            ("/kv/%0g", "%0g"),
            ("/kv/%%41", "%A"),
            ("/kv/%41%4", "A%4"),
            ("/kv/%-1", "%-1"),
        ];
        for (uri, literal) in cases {
            assert!(
                matches!(
                    key_in(uri, Dialect::Native),
                    Err(ApiError::InvalidPercentEscape(_))
                ),
                "{uri}"
            );
            assert_eq!(&*key_in(uri, Dialect::Compat).unwrap(), literal, "{uri}");
        }
        for (uri, decoded) in [("/kv/%41%4a%4A", "AJJ"), ("/kv/plain", "plain")] {
            assert_eq!(&*key_in(uri, Dialect::Native).unwrap(), decoded, "{uri}");
        }
    }

    #[test]
    fn entity_tag_lists() {
        let parse = |name: HeaderName, value: &[u8]| {
            let value = HeaderValue::from_bytes(value).unwrap();
            let req = TestRequest::default()
                .insert_header((name.clone(), value))
                .to_http_request();
            tags(&req, name)
        };
        let if_match = |value: &str| parse(header::IF_MATCH, value.as_bytes());
        let if_none_match = |value: &str| parse(header::IF_NONE_MATCH, value.as_bytes());
        let versions = |list: &[u64]| Some(Tags::Versions(list.to_vec()));
        assert_eq!(if_match(" * ").unwrap(), Some(Tags::Any));
        assert_eq!(if_match("\"3\", \"4\"").unwrap(), versions(&[3, 4]));
        // Strong comparison for If-Match: a weak tag matches nothing; weak for If-None-Match.
        assert_eq!(if_match("\"3\", W/\"4\"").unwrap(), versions(&[3]));
        assert_eq!(if_none_match("\"3\", W/\"4\"").unwrap(), versions(&[3, 4]));
        // Not our versions: valid, matching nothing; commas inside tags; empty elements.
        assert_eq!(if_match("\"abc\"").unwrap(), versions(&[]));
        assert_eq!(if_none_match("W/\"a,b\",\"7\"").unwrap(), versions(&[7]));
        assert_eq!(if_none_match(", \"\" ,,\"5\",").unwrap(), versions(&[5]));
        assert_eq!(if_match("").unwrap(), versions(&[]));
        assert_eq!(
            parse(header::IF_NONE_MATCH, b"\"\xe9\", \"2\"").unwrap(),
            versions(&[2])
        );
        for bad in [
            "3",
            "\"3",
            "\"3\"x",
            "W/3",
            "\"a b\"",
            "\"3\" \"4\"",
            "w/\"3\"",
        ] {
            assert!(
                matches!(if_match(bad), Err(ApiError::InvalidHeader(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_ttl_parsing() {
        let limits = limits();
        let ttl = |uri: &str| query_ttl(&TestRequest::with_uri(uri).to_http_request(), &limits);
        assert_eq!(ttl("/v1/kv/a").unwrap(), None);
        assert_eq!(ttl("/v1/kv/a?ttl=2").unwrap(), Some(2_000_000_000));
        assert!(ttl("/v1/kv/a?ttl=abc").is_err());
        assert!(ttl("/v1/kv/a?ttl=").is_err());
        assert!(ttl("/v1/kv/a?ttl=-1").is_err());
    }
}
