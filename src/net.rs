//! Listening sockets for gauntlet's servers (mocks and the reference gateway), and the
//! keep-alive times its servers and clients agree on.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel queues for a server before it accepts them. tokio's `bind` asks for
/// 1024; a load generator opening connections in a burst (the first moments of a run, after a
/// stall) overflows that, and a SYN dropped at a full queue is retried only after a second:
/// requests that waited a whole second for a connection, blamed on the server. The kernel
/// caps the request at `net.core.somaxconn`.
const BACKLOG: u32 = 8192;

/// Listens on `addr` with a backlog fit for bursts of connections.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do on Unix: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A client that never finishes its request head (slowloris) loses its connection after
/// this; hyper counts an idle keep-alive connection's wait for its next request the same way,
/// so this is also when gauntlet's servers close a connection left idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long gauntlet's HTTP clients (load generator, gateway upstreams, control API) keep an
/// idle pooled connection. A connection idle about as long as the server's own cutoff may be
/// closing just as the next request is written on it, a failure the client caused and would
/// record as the server's; this stays under common cutoffs (uvicorn's 5 s, ours above).
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(4);
