//! The client's address behind a reverse proxy. Forwarded headers are
//! believed only when the TCP peer is a configured trusted proxy, and then
//! only as far back as the chain of trusted proxies goes: the address used
//! is the right-most one in `X-Forwarded-For` (or RFC 7239 `Forwarded`)
//! that is not itself a trusted proxy. A client cannot choose its own
//! address by sending the header, so per-address throttles keep working.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request is attributed to (throttles, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|n| n.contains(&ip))
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One hop of `X-Forwarded-For` (`1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]:5678`).
fn parse_xff_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

/// One `for=` value of RFC 7239 (`192.0.2.60`, `"[2001:db8::1]:4711"`,
/// `unknown`, `_hidden`).
fn parse_forwarded_for(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    let v = v
        .strip_prefix('[')
        .map_or(v, |rest| rest.split(']').next().unwrap_or(rest));
    parse_xff_hop(v)
}

/// The hops the proxies recorded, oldest first; `None` when a header is
/// present but unreadable (then nothing in it is believed).
fn hops(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        let mut out = Vec::new();
        for element in forwarded.iter().flat_map(|v| v.split(',')) {
            let for_value = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            });
            out.push(parse_forwarded_for(for_value?)?);
        }
        return Some(out);
    }
    let mut out = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        for hop in v.to_str().ok()?.split(',') {
            out.push(parse_xff_hop(hop)?);
        }
    }
    Some(out)
}

/// The client's address for a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    let Some(chain) = hops(headers) else {
        return peer;
    };
    // Walk back from the proxy nearest to us; the first address that is
    // not one of our proxies is the client.
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        client = canonical(hop);
        if !trusted(client, proxies) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|x| x.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let p = nets(&["10.0.0.0/8"]);
        let hdr = h(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(client_ip(ip("203.0.113.9"), &hdr, &p), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn trusted_proxy_names_the_client() {
        let p = nets(&["10.0.0.0/8"]);
        let hdr = h(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("198.51.100.7"));
    }

    #[test]
    fn a_client_cannot_spoof_by_prepending() {
        // The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended
        // the real address. The right-most untrusted hop wins.
        let p = nets(&["10.0.0.0/8"]);
        let hdr = h(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("198.51.100.7"));
        // Two of our proxies in a row.
        let hdr = h(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("198.51.100.7"));
        // Split over two header lines.
        let hdr = h(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("198.51.100.7"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let p = nets(&["10.0.0.0/8", "::1/128"]);
        let hdr = h(&[("forwarded", "for=1.1.1.1, for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(client_ip(ip("::1"), &hdr, &p), ip("2001:db8::1"));
        let hdr = h(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]);
        assert_eq!(client_ip(ip("10.2.3.4"), &hdr, &p), ip("192.0.2.60"));
    }

    #[test]
    fn garbage_or_absent_headers_leave_the_peer() {
        let p = nets(&["10.0.0.0/8"]);
        for bad in ["not-an-ip", "1.1.1.1, <script>", ""] {
            let hdr = h(&[("x-forwarded-for", bad)]);
            assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("10.0.0.5"), "{bad:?}");
        }
        let hdr = h(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &hdr, &p), ip("10.0.0.5"));
        assert_eq!(client_ip(ip("10.0.0.5"), &HeaderMap::new(), &p), ip("10.0.0.5"));
    }

    #[test]
    fn v4_mapped_peers_count_as_v4() {
        let p = nets(&["127.0.0.1/32"]);
        let hdr = h(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &hdr, &p), ip("198.51.100.7"));
    }
}
