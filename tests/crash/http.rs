//! The blocking HTTP client of the crash test: every call bounded by `HTTP_TIMEOUT`.

use super::{
    HTTP_TIMEOUT,
    model::{Held, Stamp},
};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub body: String,
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build()
}

/// One request; `Err` only for transport failures (any status is a `Reply`).
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<Reply, String> {
    let request = agent
        .request(method, url)
        .set("Content-Type", "application/json");
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(format!("{method} {url}: {error}")),
    };
    let status = response.status();
    let etag = response.header("ETag").map(str::to_owned);
    let body = response
        .into_string()
        .map_err(|error| format!("{method} {url}: reading the body: {error}"))?;
    Ok(Reply { status, etag, body })
}

/// What `key` holds, read back with its ETag.
pub fn read(agent: &ureq::Agent, base: &str, key: &str) -> Result<Held, String> {
    let reply = call(agent, "GET", &format!("{base}/v1/kv/{key}"), None)?;
    match reply.status {
        404 => Ok(None),
        200 => {
            let stamp = Stamp::of(&reply.body)
                .ok_or_else(|| format!("a value no client sent: {reply:?}"))?;
            let version = reply
                .etag
                .as_deref()
                .and_then(|tag| tag.trim_matches('"').parse().ok())
                .ok_or_else(|| format!("no ETag version: {reply:?}"))?;
            Ok(Some((stamp, version)))
        }
        _ => Err(format!("GET answered {reply:?}")),
    }
}
