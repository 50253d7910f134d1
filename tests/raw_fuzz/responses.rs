//! Splits what a connection answered into HTTP/1.x responses, strictly: a status
//! line and head httparse accepts, then a body framed by `Transfer-Encoding:
//! chunked`, `Content-Length` or (without either) the connection's close. Anything
//! else, including a response cut short, is malformed.

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// Whether the response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|value| {
            value
                .split(|&byte| byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
    }
}

/// The responses in `bytes`, and where the first malformed one starts with why.
pub fn parse(bytes: &[u8]) -> (Vec<Response>, Option<(usize, String)>) {
    let mut responses = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_one(&bytes[at..]) {
            Ok((response, used)) => {
                responses.push(response);
                at += used;
            }
            Err(why) => return (responses, Some((at, why))),
        }
    }
    (responses, None)
}

fn parse_one(bytes: &[u8]) -> Result<(Response, usize), String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut fields);
    let head_len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(error) => return Err(format!("bad response head: {error}")),
    };
    let status = head.code.expect("complete head has a status");
    let headers: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|field| (field.name.to_owned(), field.value.to_vec()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &bytes[head_len..];
    let used = if (100..200).contains(&status) || status == 204 || status == 304 {
        0
    } else if response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case(b"chunked"))
    {
        dechunk(rest, &mut response.body)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = std::str::from_utf8(length)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| format!("bad Content-Length {:?}", length.escape_ascii().to_string()))?;
        if rest.len() < length {
            return Err(format!(
                "body cut short: Content-Length {length}, {} bytes",
                rest.len()
            ));
        }
        response.body = rest[..length].to_vec();
        length
    } else {
        response.body = rest.to_vec();
        rest.len()
    };
    Ok((response, head_len + used))
}

/// Decodes a chunked body into `body`; answers the bytes it used.
fn dechunk(bytes: &[u8], body: &mut Vec<u8>) -> Result<usize, String> {
    let mut at = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&bytes[at..]) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => return Err("incomplete chunk size".into()),
            Err(_) => return Err("bad chunk size".into()),
        };
        at += size_len;
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_owned())?;
        if size == 0 {
            // No trailers from our server: the last chunk ends with one CRLF.
            return match bytes.get(at..at + 2) {
                Some(b"\r\n") => Ok(at + 2),
                _ => Err("chunked body not terminated".into()),
            };
        }
        let data = bytes
            .get(at..at + size)
            .ok_or_else(|| "chunk cut short".to_owned())?;
        body.extend_from_slice(data);
        at += size;
        if bytes.get(at..at + 2) != Some(b"\r\n") {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}
