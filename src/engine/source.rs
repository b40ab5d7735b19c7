//! Where the load's connections come from (`--source-ips`): several local addresses, dealt
//! out round robin, each connection bound to its address before it connects. One address has
//! ~28k ephemeral ports towards one server address and port; eight give eight times that, so
//! one generator can hold 100,000 open streams against one mock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpSocket, TcpStream};

/// A range larger than this is a typo (a /16 spelled as a range), not a plan.
const MAX_ADDRESSES: u128 = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceIpsError {
    #[error(
        "no address given: expected a list like 127.0.0.2,127.0.0.3 or a range like 127.0.0.2-127.0.0.9"
    )]
    Empty,
    #[error("`{0}` is not an IP address (expected e.g. 127.0.0.2, or a range 127.0.0.2-127.0.0.9)")]
    NotAnAddress(String),
    #[error("the range {from}-{to} runs backwards (its first address is above its last)")]
    Backwards { from: IpAddr, to: IpAddr },
    #[error("the range {from}-{to} mixes IPv4 and IPv6")]
    MixedFamilies { from: IpAddr, to: IpAddr },
    #[error("the range {from}-{to} holds {count} addresses, more than the {MAX_ADDRESSES} allowed")]
    TooMany {
        from: IpAddr,
        to: IpAddr,
        count: u128,
    },
    #[error("{addr} is not an address of this machine (binding to it failed: {reason})")]
    NotLocal { addr: IpAddr, reason: String },
}

/// Parses `127.0.0.2-127.0.0.9`, `127.0.0.2,127.0.0.5` or a mix of both (comma-separated
/// items, each an address or a range of addresses). Duplicates are kept: naming an address
/// twice gives it twice the connections.
pub fn parse_source_ips(text: &str) -> Result<Vec<IpAddr>, SourceIpsError> {
    let mut addrs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let ip = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| SourceIpsError::NotAnAddress(s.trim().to_string()))
        };
        match item.split_once('-') {
            None => addrs.push(ip(item)?),
            Some((a, b)) => addrs.extend(range(ip(a)?, ip(b)?)?),
        }
    }
    if addrs.is_empty() {
        return Err(SourceIpsError::Empty);
    }
    Ok(addrs)
}

fn range(from: IpAddr, to: IpAddr) -> Result<Vec<IpAddr>, SourceIpsError> {
    let (lo, hi, v4) = match (from, to) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => return Err(SourceIpsError::MixedFamilies { from, to }),
    };
    if lo > hi {
        return Err(SourceIpsError::Backwards { from, to });
    }
    let count = hi - lo + 1;
    if count > MAX_ADDRESSES {
        return Err(SourceIpsError::TooMany { from, to, count });
    }
    Ok((lo..=hi)
        .map(|n| match v4 {
            // In range: both ends came from u32s.
            true => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
            false => IpAddr::V6(Ipv6Addr::from(n)),
        })
        .collect())
}

/// Refuses an address this machine does not have: binding to it is the test the kernel
/// itself would apply at the first connection, done before anything starts.
pub fn check_local(addrs: &[IpAddr]) -> Result<(), SourceIpsError> {
    for &addr in addrs {
        std::net::TcpListener::bind(SocketAddr::new(addr, 0)).map_err(|e| {
            SourceIpsError::NotLocal {
                addr,
                reason: e.to_string(),
            }
        })?;
    }
    Ok(())
}

/// The addresses new connections leave from, taken in turn; none means the kernel's choice.
#[derive(Debug, Default)]
pub struct Sources {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(addrs: Vec<IpAddr>) -> Self {
        Self {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        self.addrs.get(i).copied()
    }

    /// A TCP connection to `addr` (`host:port`), from the next source address if there are
    /// any; tries each of the host's addresses of that address's family.
    pub async fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let Some(source) = self.take() else {
            return TcpStream::connect(addr).await;
        };
        let mut last = None;
        for target in tokio::net::lookup_host(addr).await? {
            if target.is_ipv4() != source.is_ipv4() {
                continue;
            }
            match bound_connect(source, target).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{addr} has no address of the source address {source}'s family"),
            )
        }))
    }
}

async fn bound_connect(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Port 0: the kernel picks a free ephemeral port of this address.
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ranges_and_lists_expand_in_order() {
        let got = parse_source_ips("127.0.0.2-127.0.0.4, 127.0.0.9").expect("valid");
        assert_eq!(
            got,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"].map(v4)
        );
        assert_eq!(parse_source_ips("::1").expect("valid"), vec![v4("::1")]);
        // A range may cross an octet.
        assert_eq!(
            parse_source_ips("10.0.0.255-10.0.1.0").expect("valid"),
            vec![v4("10.0.0.255"), v4("10.0.1.0")]
        );
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        assert_eq!(parse_source_ips(" , "), Err(SourceIpsError::Empty));
        assert_eq!(
            parse_source_ips("127.0.0.2,localhost"),
            Err(SourceIpsError::NotAnAddress("localhost".into()))
        );
        assert!(matches!(
            parse_source_ips("127.0.0.9-127.0.0.2"),
            Err(SourceIpsError::Backwards { .. })
        ));
        assert!(matches!(
            parse_source_ips("127.0.0.1-::1"),
            Err(SourceIpsError::MixedFamilies { .. })
        ));
        assert!(matches!(
            parse_source_ips("10.0.0.0-10.2.0.0"),
            Err(SourceIpsError::TooMany { count: 131_073, .. })
        ));
    }

    #[test]
    fn an_address_of_another_machine_is_refused() {
        // TEST-NET-1 (RFC 5737): never assigned to a machine.
        let addr = v4("192.0.2.1");
        assert!(matches!(
            check_local(&[v4("127.0.0.1"), addr]),
            Err(SourceIpsError::NotLocal { addr: a, .. }) if a == addr
        ));
    }

    #[test]
    fn sources_are_taken_in_turn() {
        let s = Sources::new(vec![v4("127.0.0.2"), v4("127.0.0.3")]);
        let taken: Vec<_> = (0..4).filter_map(|_| s.take()).collect();
        assert_eq!(
            taken,
            ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"].map(v4)
        );
        assert_eq!(Sources::default().take(), None);
    }
}
