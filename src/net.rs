//! Listening sockets for gauntlet's servers (mocks and the reference gateway).

use std::net::SocketAddr;

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
