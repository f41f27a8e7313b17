//! The HTTP server: the router on hyper, with the limits `axum::serve` does
//! not set, so slow or numerous clients cannot hold the server for others.
//!
//! - A client has `http.header_read_timeout_secs` to send a request's
//!   headers (hyper's HTTP/1 header timer, which runs from the connection's
//!   first read, so a client that sends nothing at all is cut off too): a
//!   slowloris client that trickles one header byte a second does not hold
//!   its connection. (HTTP/1 only: the tree builds no HTTP/2.)
//! - The body is read by the handler, inside `http.request_timeout_secs`
//!   (the tower timeout in [`crate::router`]), so a slow body is cut off too.
//! - At most `http.max_connections` connections are open at once; past it
//!   new ones wait in the kernel's queue until one closes, so memory and file
//!   descriptors stay bounded.
//!
//! - The listen queue holds `http.listen_backlog` connections (std's
//!   default of 128 overflows under a burst of a few hundred connects, and
//!   the kernel then drops handshakes that the client believes complete).
//!
//! Shutdown is graceful: no new connections, each open one finishes its
//! request in flight, and the call returns once all are closed, or after
//! `request_timeout_secs` more (a client that never reads its answer).
//!
//! Left open: a client that reads its answer very slowly holds its slot
//! until it is done; there is no write timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::config::HttpConfig;

/// Binds `addr` with a listen queue of `backlog` (the kernel caps it at
/// `net.core.somaxconn`).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: &HttpConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let max_connections = http.max_connections.clamp(1, Semaphore::MAX_PERMITS as u32);
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let header_timeout = Duration::from_secs(http.header_read_timeout_secs.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        // A slot first: past the cap, connections wait in the listen queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A client that gave up before it was accepted.
                Err(err) if matches!(err.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed; pausing a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer's address, as `into_make_service_with_connect_info` would put it.
        let service = router.clone().map_request(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let service = TowerToHyperService::new(service);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_end(peer, result),
                // (The guard `wait_for` returns is dropped at once: it is not `Send`.)
                () = async { drop(stop.wait_for(|stop| *stop).await) } => {
                    conn.as_mut().graceful_shutdown();
                    log_end(peer, conn.await);
                }
            }
        });
    }

    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back means every connection has closed.
    let drain = Duration::from_secs(http.request_timeout_secs.max(1));
    if tokio::time::timeout(drain, slots.acquire_many(max_connections)).await.is_err() {
        tracing::warn!("connections still open after the drain; closing them");
    }
    Ok(())
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended");
    }
}
