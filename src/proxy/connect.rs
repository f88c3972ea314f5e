//! `CONNECT` tunnels through the forward proxy (RFC 9110 §9.3.6).
//!
//! The target is dialled first (502 when unreachable), then the downstream
//! gets `200` and bytes are copied both ways until either side closes. The
//! span covers the tunnel only: it starts with the `CONNECT` and ends when
//! the tunnel closes, with the bytes each way as body sizes.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::{ResponseBody, TracedBody};
use super::error::ProxyError;
use super::flight::{Ending, InFlight};
use super::{Proxy, local_error};
use crate::server::{RequestBody, Tunnels};

/// Dials `host:port` and, on success, tunnels the upgraded connection to it.
pub async fn open(
    proxy: &Arc<Proxy>,
    mut request: Request<RequestBody>,
    mut flight: InFlight,
    host: &str,
    port: u16,
    connect_timeout: std::time::Duration,
    tunnels: &Tunnels,
) -> Response<ResponseBody> {
    let target = format!("{host}:{port}");
    let dialled = tokio::time::timeout(connect_timeout, TcpStream::connect((host, port))).await;
    let stream = match dialled {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            let error = ProxyError::Connect {
                upstream: target,
                source: error.into(),
            };
            return local_error(proxy, flight, error);
        }
        Err(_) => {
            let error = ProxyError::Timeout {
                upstream: target,
                timeout: connect_timeout,
            };
            return local_error(proxy, flight, error);
        }
    };
    let _ = stream.set_nodelay(true);
    let upgrade = hyper::upgrade::on(&mut request);
    flight.set_status(StatusCode::OK.as_u16());
    // The server owns the tunnel: it ends when either side closes, or
    // when the server's shutdown grace period is over.
    tunnels.spawn(async move {
        let ending = match upgrade.await {
            Ok(upgraded) => copy(TokioIo::new(upgraded), stream, &mut flight).await,
            Err(error) => Ending::UpstreamBodyError(format!("upgrade failed: {error}")),
        };
        flight.finish(ending);
    });
    let mut response = Response::new(TracedBody::untraced(Either::Right(Full::default())));
    *response.status_mut() = StatusCode::OK;
    response
}

async fn copy(
    mut downstream: TokioIo<hyper::upgrade::Upgraded>,
    mut upstream: TcpStream,
    flight: &mut InFlight,
) -> Ending {
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((sent, received)) => {
            flight.http_mut().request_body_bytes = sent;
            flight.http_mut().response_body_bytes = received;
            Ending::Complete
        }
        Err(error) => Ending::UpstreamBodyError(format!("tunnel: {error}")),
    }
}
