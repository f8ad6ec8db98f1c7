//! One served connection: the service that tracks its requests, and the
//! driver that closes it when it has nothing to do.
//!
//! hyper alone would keep a connection open for ever when the client sends
//! nothing: `header_read_timeout` starts with the first byte of a request,
//! and HTTP/2 has no idle timeout. Each such socket held one of the
//! `limits.max_connections` slots, so a few idle clients could take the
//! service down. Here a connection's activity is counted in requests, not
//! bytes (an HTTP/2 PING or a slowly dribbled HEADERS frame is not a
//! request), and the driver closes a connection that has had no request in
//! flight for too long, in every state, for HTTP/1 and HTTP/2 alike.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{Request, Response};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

use super::forwarded;
use crate::config::Limits;

/// How long one connection may go without a request, by state.
#[derive(Debug, Clone, Copy)]
pub struct IdleLimits {
    /// No request has started since the TLS handshake.
    pub first_request: Duration,
    /// No request in flight, after at least one.
    pub idle: Duration,
    /// Requests in flight, but none started, finished or sent a response
    /// frame for this long: the peer stopped reading its responses (a
    /// handler itself is cut off by the request timeout well before).
    pub stalled: Duration,
    /// After an idle connection is asked to close (HTTP/1: at once when
    /// idle; HTTP/2: GOAWAY, then a PING round trip), how long it may take
    /// before it is dropped.
    pub close_grace: Duration,
}

impl IdleLimits {
    pub fn new(limits: &Limits) -> IdleLimits {
        IdleLimits {
            first_request: limits.header_read_timeout,
            idle: limits.idle_timeout,
            stalled: limits.request_timeout.saturating_add(limits.idle_timeout),
            close_grace: Duration::from_secs(2),
        }
    }
}

/// What the requests of one connection are doing, shared between the
/// service (which counts them) and the driver (which reads the counts).
pub struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    started: AtomicBool,
    /// Milliseconds after `origin` of the last request start, request end
    /// or response frame.
    last_ms: AtomicU64,
    /// Woken when the last request in flight ends: the deadline moves from
    /// the stalled bound to the (usually earlier) idle bound.
    went_idle: Notify,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
            went_idle: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Release);
    }

    /// A request starts; it counts as in flight until the returned guard
    /// is dropped (with its response body, or with the request if it is
    /// abandoned).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Release);
        self.touch();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// When the connection will have been idle (or stalled) too long, as
    /// of what is known now.
    fn deadline(&self, limits: &IdleLimits) -> Instant {
        // The count is read before the time: a request that ends stores
        // the time before it decrements, so seeing "none in flight" means
        // seeing that request's end time too.
        let wait = if self.busy() {
            limits.stalled
        } else if self.started.load(Ordering::Acquire) {
            limits.idle
        } else {
            limits.first_request
        };
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        self.origin
            .checked_add(last.saturating_add(wait))
            // Unreachable in practice (centuries); never closes early.
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
    }
}

/// One request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    fn progress(&self) {
        self.0.touch();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Time first, then the count: see `Activity::deadline`.
        self.0.touch();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit when the driver is not waiting right now.
            self.0.went_idle.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until hyper drops it,
/// i.e. until the response has been handed to the connection in full (or
/// abandoned). Each frame counts as progress, so a long response that
/// keeps flowing is not taken for a stalled one.
struct Tracked {
    body: Body,
    in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // `Body` is a boxed body, so `Tracked` is `Unpin`: no projection.
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.in_flight.progress();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    // Forwarded so HTTP/1 responses keep their Content-Length instead of
    // turning chunked (`BodyExt::map_frame` would drop the hint).
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The per-connection service: marks each request with the peer and the
/// client address (for throttles and logs), counts it in the connection's
/// [`Activity`], and hands it to the router.
#[derive(Clone)]
pub struct ConnService {
    pub router: axum::Router,
    pub proxies: Arc<[ipnet::IpNet]>,
    pub peer: SocketAddr,
    pub activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut req: Request<Incoming>) -> ResponseFuture {
        let in_flight = self.activity.begin();
        let client = forwarded::client_ip(self.peer.ip(), req.headers(), &self.proxies);
        req.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        req.extensions_mut().insert(forwarded::ClientIp(client));
        let response = self.router.clone().oneshot(req);
        Box::pin(async move {
            // If this future is dropped (HTTP/2 stream reset), `in_flight`
            // goes with it.
            let response = match response.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(response.map(|body| Body::new(Tracked { body, in_flight })))
        })
    }
}

/// A connection the driver can ask to close gracefully.
pub trait GracefulClose {
    /// HTTP/1: close now when idle, else after the response in progress;
    /// HTTP/2: GOAWAY, let open streams finish; before the protocol is
    /// known: stop waiting for it.
    fn close_gracefully(self: Pin<&mut Self>);
}

pub type Conn<'a> = auto::UpgradeableConnection<'a, TokioIo<TlsStream<TcpStream>>, ConnService, TokioExecutor>;

impl GracefulClose for Conn<'_> {
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// hyper finished it (the peer closed, or it closed after a graceful
    /// shutdown).
    Closed,
    /// hyper finished it with an error (including a cancelled protocol
    /// sniff, which is how a silent connection ends).
    Failed(String),
    /// Asked to close for idleness, it did not within the grace period
    /// (e.g. an HTTP/2 peer that never answers the GOAWAY ping), and was
    /// dropped.
    Dropped,
}

/// Serves `conn` until it ends: on `stop` it is closed gracefully and
/// awaited (the caller bounds that by `limits.shutdown_grace`); when it has
/// been idle past `limits` it is closed gracefully and, if it has not gone
/// within `close_grace` with nothing in flight, dropped.
pub async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    activity: &Activity,
    limits: &IdleLimits,
    stop: &mut watch::Receiver<bool>,
    peer: SocketAddr,
) -> Ended
where
    C: Future<Output = Result<(), E>> + GracefulClose + ?Sized,
    E: std::fmt::Display,
{
    let mut stopping = false;
    // When the idle close was asked for.
    let mut closing: Option<Instant> = None;
    loop {
        let wake = match closing {
            None => activity.deadline(limits),
            // A request that raced in gets its normal bound; a stalled one
            // is already past it.
            Some(at) if activity.busy() => (at + limits.close_grace).max(activity.deadline(limits)),
            Some(at) => at + limits.close_grace,
        };
        tokio::select! {
            r = conn.as_mut() => {
                return match r {
                    Ok(()) => Ended::Closed,
                    Err(e) => Ended::Failed(e.to_string()),
                };
            }
            // `wait_for` sees a stop that came before this task started;
            // an error means the sender is gone, which also means stop.
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().close_gracefully();
            }
            // Only to compute the new deadline.
            () = activity.went_idle.notified() => {}
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                match closing {
                    None if activity.deadline(limits) <= now => {
                        let why = if activity.busy() {
                            "its requests in flight made no progress"
                        } else if activity.started.load(Ordering::Acquire) {
                            "no further request came"
                        } else {
                            "no request came after the TLS handshake"
                        };
                        tracing::debug!(%peer, "closing idle connection: {why}");
                        conn.as_mut().close_gracefully();
                        closing = Some(now);
                    }
                    Some(at) if now >= at + limits.close_grace
                        && (!activity.busy() || activity.deadline(limits) <= now) => {
                        return Ended::Dropped;
                    }
                    // Woken early: a request started or ended meanwhile.
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that records close requests and, if `obliging`, ends
    /// at the first one (as HTTP/1 does when idle); otherwise it never ends
    /// (an HTTP/2 peer that ignores GOAWAY).
    struct FakeConn {
        closes: Arc<AtomicUsize>,
        obliging: bool,
        waker: Option<std::task::Waker>,
    }

    impl FakeConn {
        fn new(obliging: bool) -> (FakeConn, Arc<AtomicUsize>) {
            let closes = Arc::new(AtomicUsize::new(0));
            (
                FakeConn {
                    closes: closes.clone(),
                    obliging,
                    waker: None,
                },
                closes,
            )
        }
    }

    impl Future for FakeConn {
        type Output = Result<(), String>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if self.obliging && self.closes.load(Ordering::SeqCst) > 0 {
                return Poll::Ready(Ok(()));
            }
            self.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl GracefulClose for FakeConn {
        fn close_gracefully(mut self: Pin<&mut Self>) {
            self.closes.fetch_add(1, Ordering::SeqCst);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    fn limits(ms: u64) -> IdleLimits {
        IdleLimits {
            first_request: Duration::from_millis(ms),
            idle: Duration::from_millis(2 * ms),
            stalled: Duration::from_millis(6 * ms),
            close_grace: Duration::from_millis(ms),
        }
    }

    async fn run(conn: FakeConn, activity: Arc<Activity>, l: IdleLimits) -> (Ended, Duration) {
        let (_tx, mut rx) = watch::channel(false);
        let t = Instant::now();
        let mut conn = std::pin::pin!(conn);
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            drive(conn.as_mut(), &activity, &l, &mut rx, PEER),
        )
        .await
        .expect("driver never gave up on the connection");
        (ended, t.elapsed())
    }

    #[tokio::test]
    async fn no_first_request_closes_after_the_first_request_bound() {
        let (conn, closes) = FakeConn::new(true);
        let (ended, took) = run(conn, Arc::new(Activity::new()), limits(100)).await;
        assert_eq!(ended, Ended::Closed);
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert!(took >= Duration::from_millis(100), "{took:?}");
    }

    #[tokio::test]
    async fn a_connection_that_ignores_the_close_is_dropped_after_the_grace() {
        let (conn, closes) = FakeConn::new(false);
        let (ended, took) = run(conn, Arc::new(Activity::new()), limits(100)).await;
        assert_eq!(ended, Ended::Dropped);
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert!(took >= Duration::from_millis(200), "{took:?}");
    }

    #[tokio::test]
    async fn in_flight_keeps_it_open_then_idle_bound_applies() {
        let activity = Arc::new(Activity::new());
        let request = activity.begin();
        let (conn, closes) = FakeConn::new(true);
        // first request 200 ms, idle 400 ms, stalled 1200 ms.
        let driver = tokio::spawn(run(conn, activity.clone(), limits(200)));
        // Past the first-request and idle bounds, but a request is in flight.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(closes.load(Ordering::SeqCst), 0, "closed with a request in flight");
        request.progress();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(request);
        let ended_at = Instant::now();
        let (ended, _) = driver.await.unwrap();
        assert_eq!(ended, Ended::Closed);
        let after = ended_at.elapsed();
        // The idle bound counts from the request's end, and the driver does
        // not sleep on until the stalled bound (1000 ms after the drop).
        assert!(after >= Duration::from_millis(380), "{after:?}");
        assert!(after < Duration::from_millis(900), "{after:?}");
    }

    #[tokio::test]
    async fn a_stalled_request_does_not_hold_the_connection_for_ever() {
        let activity = Arc::new(Activity::new());
        let _stuck = activity.begin();
        let (conn, closes) = FakeConn::new(false);
        let (ended, took) = run(conn, activity, limits(100)).await;
        assert_eq!(ended, Ended::Dropped);
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert!(took >= Duration::from_millis(600), "{took:?}");
    }

    #[tokio::test]
    async fn stop_closes_gracefully_and_waits_for_the_connection() {
        let activity = Arc::new(Activity::new());
        let _request = activity.begin();
        let (conn, closes) = FakeConn::new(false);
        let (tx, mut rx) = watch::channel(false);
        let l = limits(10_000);
        let driver = tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            drive(conn.as_mut(), &activity, &l, &mut rx, PEER).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert!(!driver.is_finished(), "must keep serving the request in flight");
        driver.abort();
    }
}
