//! Addresses in URLs and `host:port`: the `host` and `hostport` template filters.
//!
//! An IPv6 address must be bracketed in a URL's authority and before a `:port`
//! (`http://[fd00::5]:2380`, RFC 3986 section 3.2.2); an IPv4 address or a DNS name must not.
//! A template that writes `http://{{ pod_ip }}:2380` is therefore right for an IPv4 pod and
//! broken for an IPv6 one. `{{ pod_ip | hostport(2380) }}` is right for both:
//!
//! | value | `host` | `hostport(2380)` |
//! |---|---|---|
//! | `10.0.0.5` | `10.0.0.5` | `10.0.0.5:2380` |
//! | `fd00::5` | `[fd00::5]` | `[fd00::5]:2380` |
//! | `[fd00::5]` | `[fd00::5]` | `[fd00::5]:2380` |
//! | `web-0.web.default.svc.cluster.local` | unchanged | `web-0.web.default.svc.cluster.local:2380` |
//!
//! Anything else (an address with a port or a zone, an empty string, a space...) is a template
//! error that names the value: it would not be a valid URL host either way.

use std::net::{IpAddr, Ipv6Addr};

use minijinja::{Error, ErrorKind, Value};

/// `value` as a URL host: an IPv6 address in brackets (in its canonical form), an IPv4
/// address or a DNS name unchanged.
pub fn host(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(format!("[{ip}]")),
            Err(_) => Err(format!(
                "{} is not a bracketed IPv6 address",
                crate::secret::quote(value)
            )),
        };
    }
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => return Ok(format!("[{ip}]")),
        Ok(IpAddr::V4(ip)) => return Ok(ip.to_string()),
        Err(_) => {}
    }
    let is_name = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if is_name {
        Ok(value.to_string())
    } else if value.contains(':') {
        Err(format!(
            "{} is neither an IP address nor a host name (a port or a zone index already in it?)",
            crate::secret::quote(value)
        ))
    } else {
        Err(format!(
            "{} is neither an IP address nor a host name",
            crate::secret::quote(value)
        ))
    }
}

/// `host(value):port`; `port` is a number (or a string of digits) from 0 to 65535.
pub fn hostport(value: &str, port: &Value) -> Result<String, String> {
    // An integer, or a string of digits: not a boolean (`true` is 1 to the engine) nor a
    // float, which would become a port nobody wrote.
    let number = match port.kind() {
        minijinja::value::ValueKind::Number if port.is_integer() => port.as_i64(),
        minijinja::value::ValueKind::String => port
            .as_str()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok()),
        _ => None,
    };
    match number.and_then(|n| u16::try_from(n).ok()) {
        Some(port) => Ok(format!("{}:{port}", host(value)?)),
        None => Err(format!(
            "port {} is not a number from 0 to 65535",
            crate::secret::quote(&port.to_string())
        )),
    }
}

/// The `host` filter.
pub fn host_filter(value: &str) -> Result<String, Error> {
    host(value).map_err(|why| Error::new(ErrorKind::InvalidOperation, format!("host: {why}")))
}

/// The `hostport(port)` filter.
pub fn hostport_filter(value: &str, port: Value) -> Result<String, Error> {
    hostport(value, &port)
        .map_err(|why| Error::new(ErrorKind::InvalidOperation, format!("hostport: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_gets_brackets_and_everything_else_stays() {
        let cases = [
            ("10.0.0.5", "10.0.0.5"),
            ("fd00::5", "[fd00::5]"),
            ("FD00:0:0::5", "[fd00::5]"),
            ("[fd00::5]", "[fd00::5]"),
            ("::1", "[::1]"),
            ("::ffff:10.0.0.5", "[::ffff:10.0.0.5]"),
            (
                "web-0.web.default.svc.cluster.local",
                "web-0.web.default.svc.cluster.local",
            ),
            ("localhost", "localhost"),
        ];
        for (value, want) in cases {
            assert_eq!(host(value).unwrap(), want, "{value}");
            assert_eq!(
                hostport(value, &Value::from(2380)).unwrap(),
                format!("{want}:2380"),
                "{value}"
            );
        }
        assert_eq!(
            hostport("fd00::5", &Value::from("2379")).unwrap(),
            "[fd00::5]:2379"
        );
    }

    #[test]
    fn what_cannot_be_a_url_host_is_refused_by_name() {
        for bad in [
            "",
            "10.0.0.5:2380",
            "[fd00::5]:2380",
            "fe80::1%eth0",
            "[10.0.0.5]",
            "my host",
            "a/b",
            "fd00::5]",
        ] {
            let err = host(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        for bad_port in [
            Value::from(-1),
            Value::from(65536),
            Value::from("http"),
            Value::from(2.5),
            Value::from(true),
            Value::from(false),
            Value::from("+80"),
            Value::from(()),
        ] {
            let err = hostport("10.0.0.5", &bad_port).unwrap_err();
            assert!(err.contains("0 to 65535"), "{bad_port}: {err}");
        }
    }
}
