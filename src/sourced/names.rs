//! Names and addresses: the RFC 1123 rules for labels and subdomains, a pod name's ordinal,
//! and the documentation addresses that stand in for unknown pod IPs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 documentation addresses (RFC 5737): three /24s, 762 hosts.
const V4_DOCUMENTATION: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
const V4_DOCUMENTATION_HOSTS: u32 = 3 * 254;

/// A stand-in pod IP for dry runs and `check`, for the member at 0-based `index`: distinct per
/// member, and from the ranges reserved for documentation (RFC 5737, then RFC 3849) so it can
/// never reach a real host. IPv4 for the first 762 members, then IPv6.
pub fn documentation_ip(index: u32) -> IpAddr {
    if index < V4_DOCUMENTATION_HOSTS {
        IpAddr::V4(documentation_ipv4(index))
    } else {
        IpAddr::V6(documentation_ipv6(index))
    }
}

/// An IPv4 documentation address for member `index`; distinct for the first 762 members, then
/// the same ones again.
pub fn documentation_ipv4(index: u32) -> Ipv4Addr {
    let n = index % V4_DOCUMENTATION_HOSTS;
    let prefix = V4_DOCUMENTATION[(n / 254) as usize];
    Ipv4Addr::new(prefix[0], prefix[1], prefix[2], (n % 254 + 1) as u8)
}

/// An IPv6 documentation address (`2001:db8::/32`) for member `index`, distinct per member.
pub fn documentation_ipv6(index: u32) -> Ipv6Addr {
    let n = u64::from(index) + 1;
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (n >> 16) as u16, n as u16)
}

/// Stand-in addresses for member `index` of the given families `(ipv4, ipv6)` (both when
/// neither is given), the primary first: [`documentation_ip`] when its family is wanted.
pub fn documentation_ips(index: u32, (v4, v6): (bool, bool)) -> Vec<IpAddr> {
    let (v4, v6) = if v4 || v6 { (v4, v6) } else { (true, true) };
    let four = IpAddr::V4(documentation_ipv4(index));
    let six = IpAddr::V6(documentation_ipv6(index));
    let primary = documentation_ip(index);
    let mut ips = Vec::with_capacity(2);
    if (primary.is_ipv4() && v4) || (primary.is_ipv6() && v6) {
        ips.push(primary);
    }
    for ip in [four, six] {
        let wanted = if ip.is_ipv4() { v4 } else { v6 };
        if wanted && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Splits `consul-12` into (`consul`, 12). The ordinal is the digits after the last `-`,
/// in canonical form (no sign, no leading zero), as the StatefulSet controller names pods.
pub fn split_ordinal(pod_name: &str) -> Option<(&str, u32)> {
    let (stem, digits) = pod_name.rsplit_once('-')?;
    if stem.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Some((stem, digits.parse().ok()?))
}

/// An RFC 1123 label: 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn validate_label(label: &str) -> std::result::Result<(), String> {
    if label.is_empty() {
        return Err("it is empty".into());
    }
    if label.len() > 63 {
        return Err(format!("it is {} characters long, over 63", label.len()));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "'{}' is not allowed (only a-z, 0-9 and -)",
            bad.escape_default()
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A DNS subdomain (RFC 1123): dot-separated labels, 253 characters at most.
pub fn validate_subdomain(domain: &str) -> std::result::Result<(), String> {
    if domain.len() > 253 {
        return Err(format!("it is {} characters long, over 253", domain.len()));
    }
    for label in domain.split('.') {
        validate_label(label).map_err(|why| format!("label '{label}': {why}"))?;
    }
    Ok(())
}
