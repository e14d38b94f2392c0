//! The least HTTP/1.1 that reads one object from the API server: one `GET` per connection
//! (`Connection: close`), a response read from any [`BufRead`] with its head and body bounded.
//! The body is framed by `Transfer-Encoding: chunked`, `Content-Length`, or the end of the
//! stream, as RFC 9112 section 6.3 orders them. Pure over the stream, so the framing is tested
//! here on byte strings; `super::tls` supplies the TLS stream.

use std::io::{self, BufRead, Read};
use std::time::Duration;

/// The most bytes of status line and headers read before giving up.
pub const MAX_HEAD: usize = 64 * 1024;

/// A response: its status code, `Retry-After` (delay-seconds form) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// How reading a response failed.
#[derive(Debug)]
pub enum HttpError {
    /// The stream failed (reset, timeout, TLS): maybe transient.
    Io(io::Error),
    /// Not HTTP/1.x as RFC 9112 frames it; `what` says where.
    Malformed(String),
    /// The body is longer than `limit` bytes.
    TooLarge { limit: usize },
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                HttpError::Malformed("the connection closed in the middle of the response".into())
            }
            _ => HttpError::Io(e),
        }
    }
}

/// The request: `GET path` with a bearer token, asking for JSON and no keep-alive. `authority`
/// is `host:port` with an IPv6 host in brackets.
pub fn request(authority: &str, path: &str, token: &str, user_agent: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Reads one response from `r`; interim 1xx responses are skipped. At most [`MAX_HEAD`] bytes
/// of head per response and `max_body` bytes of body.
pub fn read_response<R: BufRead>(r: &mut R, max_body: usize) -> Result<Response, HttpError> {
    loop {
        let mut head_left = MAX_HEAD;
        let status_line = read_line(r, &mut head_left)?;
        let status = parse_status_line(&status_line)?;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut retry_after = None;
        loop {
            let line = read_line(r, &mut head_left)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| {
                HttpError::Malformed(format!("header line '{}' has no ':'", shorten(&line)))
            })?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => {
                    let n = parse_content_length(value)?;
                    if content_length.is_some_and(|old| old != n) {
                        return Err(HttpError::Malformed(
                            "two different Content-Length headers".into(),
                        ));
                    }
                    content_length = Some(n);
                }
                "transfer-encoding" => {
                    let last = value.rsplit(',').next().unwrap_or("").trim();
                    if !last.eq_ignore_ascii_case("chunked") {
                        return Err(HttpError::Malformed(format!(
                            "Transfer-Encoding '{}' is not chunked",
                            shorten(value)
                        )));
                    }
                    chunked = true;
                }
                "retry-after" => retry_after = parse_retry_after(value),
                _ => {}
            }
        }
        if (100..200).contains(&status) {
            continue; // 100 Continue and the like: the real response follows
        }
        let body = if chunked {
            read_chunked(r, max_body)?
        } else if let Some(n) = content_length {
            if n > max_body {
                return Err(HttpError::TooLarge { limit: max_body });
            }
            let mut body = vec![0; n];
            r.read_exact(&mut body)?;
            body
        } else {
            read_to_end_bounded(r, max_body)?
        };
        return Ok(Response {
            status,
            retry_after,
            body,
        });
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &str) -> Result<u16, HttpError> {
    let bad = || {
        HttpError::Malformed(format!(
            "'{}' is not an HTTP/1.x status line",
            shorten(line)
        ))
    };
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().ok_or_else(bad)?;
    let code = parts.next().ok_or_else(bad)?;
    if !version.starts_with("HTTP/1.")
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    code.parse().map_err(|_| bad())
}

fn parse_content_length(value: &str) -> Result<usize, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed(format!(
            "Content-Length '{}' is not a number",
            shorten(value)
        )));
    }
    // Too large for usize is too large for any limit.
    Ok(value.parse().unwrap_or(usize::MAX))
}

/// `Retry-After: 5` -> 5 s. The HTTP-date form is ignored (the API server sends seconds), and
/// so is anything unparsable: the caller's backoff applies then.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_secs)
}

/// One CRLF- (or LF-) terminated line, without its terminator, charged to `left`.
fn read_line<R: BufRead>(r: &mut R, left: &mut usize) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let limit = u64::try_from(*left).unwrap_or(u64::MAX) + 1;
    let n = r.take(limit).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(HttpError::Malformed(
            "the connection closed before a complete response head".into(),
        ));
    }
    if line.last() != Some(&b'\n') {
        if n > *left {
            return Err(HttpError::Malformed(format!(
                "the response head is longer than {MAX_HEAD} bytes"
            )));
        }
        return Err(HttpError::Malformed(
            "the connection closed in the middle of the response head".into(),
        ));
    }
    *left -= n;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map_err(|_| HttpError::Malformed("the response head is not UTF-8 text".into()))
}

fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    // Chunk-size lines and trailers are bounded like a head.
    let mut meta_left = MAX_HEAD;
    loop {
        let line = read_line(r, &mut meta_left)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = match usize::from_str_radix(size, 16) {
            Ok(n) if !size.is_empty() && !size.starts_with('+') => n,
            _ => {
                return Err(HttpError::Malformed(format!(
                    "chunk size '{}' is not hexadecimal",
                    shorten(&line)
                )));
            }
        };
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(r, &mut meta_left)?.is_empty() {}
            return Ok(body);
        }
        if size > max_body - body.len() {
            return Err(HttpError::TooLarge { limit: max_body });
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r, &mut meta_left)?.is_empty() {
            return Err(HttpError::Malformed(
                "a chunk is longer than its size says".into(),
            ));
        }
    }
}

fn read_to_end_bounded<R: Read>(r: &mut R, max_body: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let limit = u64::try_from(max_body).unwrap_or(u64::MAX) + 1;
    r.take(limit).read_to_end(&mut body)?;
    if body.len() > max_body {
        return Err(HttpError::TooLarge { limit: max_body });
    }
    Ok(body)
}

/// Server text in a message: at most 80 characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], max: usize) -> Result<Response, HttpError> {
        read_response(&mut io::BufReader::new(raw), max)
    }

    fn malformed(raw: &[u8]) -> String {
        match read(raw, 1024) {
            Err(HttpError::Malformed(why)) => why,
            other => panic!(
                "{:?}: want Malformed, got {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[test]
    fn the_request_asks_for_json_with_the_token_and_closes() {
        let req =
            String::from_utf8(request("[fd00::1]:443", "/apis/x", "t0k", "peerconf/1")).unwrap();
        assert_eq!(
            req,
            "GET /apis/x HTTP/1.1\r\nHost: [fd00::1]:443\r\nAuthorization: Bearer t0k\r\n\
             Accept: application/json\r\nUser-Agent: peerconf/1\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn bodies_are_framed_by_length_chunks_or_close() {
        let by_length = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            1024,
        )
        .unwrap();
        assert_eq!(
            (by_length.status, &by_length.body[..]),
            (200, &b"hello"[..])
        );
        let chunked = read(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
            1024,
        )
        .unwrap();
        assert_eq!(chunked.body, b"abc0123456789");
        let by_close = read(b"HTTP/1.0 404 Not Found\nServer: x\n\n{}", 1024).unwrap();
        assert_eq!((by_close.status, &by_close.body[..]), (404, &b"{}"[..]));
        let after_continue = read(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
            1024,
        )
        .unwrap();
        assert_eq!(after_continue.status, 503);
        assert_eq!(after_continue.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_takes_seconds_only() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        for ignored in [
            "",
            "-1",
            "1.5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "99999999999",
        ] {
            assert_eq!(parse_retry_after(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn bodies_over_the_limit_are_refused_by_every_framing() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n0123456789a",
        ] {
            match read(raw, 10) {
                Err(HttpError::TooLarge { limit: 10 }) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
            }
        }
        // Exactly at the limit is fine.
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 10)
                .unwrap()
                .body
                .len(),
            10
        );
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let head_too_long = [
            &b"HTTP/1.1 200 OK\r\nX: "[..],
            &vec![b'a'; MAX_HEAD],
            b"\r\n\r\n",
        ]
        .concat();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "closed before a complete response head"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "has no ':'"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "is not a number",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "two different Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "is not chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "not hexadecimal",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\na\r\n0\r\n\r\n",
                "not hexadecimal",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
                "longer than its size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                "closed in the middle of the response",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-",
                "in the middle of the response head",
            ),
            (b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n", "not UTF-8"),
            (&head_too_long, "longer than 65536 bytes"),
        ];
        for (raw, want) in cases {
            let why = malformed(raw);
            assert!(
                why.contains(want),
                "{:?}: {why:?} lacks {want:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
