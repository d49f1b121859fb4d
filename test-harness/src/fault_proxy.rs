//! A fault-injecting HTTP/1.1 proxy for the store: sits on the port Envoy's store cluster
//! points at (see [`Stack::interpose_fault_proxy`](crate::Stack::interpose_fault_proxy)) and
//! forwards every request to the real store, or answers it with the [`Fault`] currently set:
//! slow replies, 5xx, truncated or garbage bodies, a wrong content type, resets.
//!
//! Plain threads and blocking sockets: one thread accepts, one thread per connection (Envoy
//! keeps a few keep-alive connections). The fault is read when a request arrives, so a change
//! applies from the next request on. Dropping the proxy stops every thread.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the store and relay its answer unchanged.
    None,
    /// Wait this long, then forward (past the filter's `store.timeout_ms`, Envoy gives up first).
    Slow(Duration),
    /// Answer with this status and a JSON error body, without asking the store.
    Status(u16),
    /// Forward, then relay the store's headers (its `content-length`) but only the first half of
    /// the body, and close: the body ends early.
    TruncatedBody,
    /// Forward, then relay a complete HTTP response whose JSON body is cut in half.
    TruncatedJson,
    /// `200`, `content-type: application/json`, a body of binary garbage.
    Garbage,
    /// `200 text/html` with an HTML page (a misrouted request, a captive portal).
    HtmlPage,
    /// Forward, then relay the store's JSON body unchanged but labelled `text/html`.
    WrongContentType,
    /// Read the request, then reset the connection (RST) without answering.
    Reset,
    /// Read the request, then close the connection (FIN) without answering.
    Close,
}

struct Shared {
    fault: Mutex<Fault>,
    stop: AtomicBool,
    requests: AtomicU64,
    faulted: AtomicU64,
    backend: SocketAddr,
    /// Request line and the fault applied, per request, in arrival order.
    log: Mutex<Vec<(String, Fault)>>,
}

/// A running fault proxy. See the module docs.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const POLL: Duration = Duration::from_millis(50);
const MAX_HEAD: usize = 64 * 1024;

impl FaultProxy {
    /// Listens on `127.0.0.1:listen_port` and forwards to `127.0.0.1:backend_port`.
    pub fn start(listen_port: u16, backend_port: u16) -> FaultProxy {
        let listener = bind_retry(listen_port);
        listener.set_nonblocking(true).expect("nonblocking listener");
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::None),
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            backend: SocketAddr::from(([127, 0, 0, 1], backend_port)),
        });
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let (sh, cs) = (shared.clone(), conns.clone());
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || {
                while !sh.stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let sh2 = sh.clone();
                            let h = std::thread::Builder::new()
                                .name("fault-proxy-conn".into())
                                .spawn(move || serve(s, &sh2))
                                .expect("spawn proxy connection thread");
                            let mut v = cs.lock().unwrap_or_else(|e| e.into_inner());
                            v.retain(|h| !h.is_finished());
                            v.push(h);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .expect("spawn proxy accept thread");
        FaultProxy { port: listen_port, shared, acceptor: Some(acceptor), conns }
    }

    /// Sets the fault for the requests that arrive from now on.
    pub fn set(&self, f: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests seen so far (forwarded or not).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request seen so far: its request line (`GET /v1/keys HTTP/1.1`) and the fault
    /// applied to it.
    pub fn seen(&self) -> Vec<(String, Fault)> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests answered with a fault so far.
    pub fn faulted(&self) -> u64 {
        self.shared.faulted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let hs: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for h in hs {
            let _ = h.join();
        }
    }
}

/// The port was just released by the store process: retry briefly.
fn bind_retry(port: u16) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("fault proxy: bind 127.0.0.1:{port}: {e}"),
        }
    }
}

/// One request as received: the head (request line + headers, without the blank line) and body.
struct Req {
    head: String,
    body: Vec<u8>,
}

/// One upstream response, parsed.
struct Resp {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn serve(mut s: TcpStream, sh: &Shared) {
    let _ = s.set_read_timeout(Some(POLL));
    let _ = s.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let req = match read_request(&mut s, &mut buf, &sh.stop) {
            Some(r) => r,
            None => return,
        };
        sh.requests.fetch_add(1, Ordering::SeqCst);
        let fault = sh.fault.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if fault != Fault::None {
            sh.faulted.fetch_add(1, Ordering::SeqCst);
        }
        let line = req.head.split("\r\n").next().unwrap_or("").to_string();
        sh.log.lock().unwrap_or_else(|e| e.into_inner()).push((line, fault.clone()));
        let keep = match fault {
            Fault::None => relay(&mut s, forward(sh.backend, &req)),
            Fault::Slow(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until {
                    if sh.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                }
                relay(&mut s, forward(sh.backend, &req))
            }
            Fault::Status(code) => {
                let body = br#"{"error":"internal","message":"injected by the fault proxy"}"#;
                write_resp(&mut s, &format!("HTTP/1.1 {code} Injected"), "application/json", body)
            }
            Fault::Garbage => {
                let body: Vec<u8> = b"\x00\xff\xfe garbage {{{ \x1b[31m ]] \"\x00"
                    .iter()
                    .copied()
                    .chain((0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8))
                    .collect();
                write_resp(&mut s, "HTTP/1.1 200 OK", "application/json", &body)
            }
            Fault::HtmlPage => write_resp(
                &mut s,
                "HTTP/1.1 200 OK",
                "text/html; charset=utf-8",
                b"<!doctype html><html><body><h1>Welcome to the captive portal</h1></body></html>",
            ),
            Fault::TruncatedJson => match forward(sh.backend, &req) {
                Some(mut r) => {
                    let half = r.body.len() / 2;
                    r.body.truncate(half);
                    relay(&mut s, Some(r))
                }
                None => false,
            },
            Fault::WrongContentType => match forward(sh.backend, &req) {
                Some(mut r) => {
                    r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                    r.headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
                    relay(&mut s, Some(r))
                }
                None => false,
            },
            Fault::TruncatedBody => {
                if let Some(r) = forward(sh.backend, &req) {
                    let mut out = format!("{}\r\n", r.status_line);
                    for (k, v) in &r.headers {
                        if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("transfer-encoding") {
                            if k.eq_ignore_ascii_case("content-length") {
                                continue;
                            }
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                    }
                    // Announce the full length (at least 2 bytes), send half, close.
                    let full = r.body.len().max(2);
                    out.push_str(&format!("content-length: {full}\r\n\r\n"));
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&r.body[..r.body.len() / 2]);
                    let _ = s.write_all(&bytes);
                    let _ = s.flush();
                }
                let _ = s.shutdown(Shutdown::Both);
                false
            }
            Fault::Reset => {
                reset(&s);
                false
            }
            Fault::Close => {
                let _ = s.shutdown(Shutdown::Both);
                false
            }
        };
        if !keep {
            return;
        }
    }
}

/// Closes with RST (SO_LINGER 0).
fn reset(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket fd and a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Reads one request (Content-Length bodies only: what Envoy sends the store). None on EOF,
/// error or stop.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<Req> {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD || !fill(s, buf, stop) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = header_of(&head, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    while buf.len() < end + 4 + len {
        if !fill(s, buf, stop) {
            return None;
        }
    }
    let body = buf[end + 4..end + 4 + len].to_vec();
    buf.drain(..end + 4 + len);
    Some(Req { head, body })
}

/// Reads more bytes; false on EOF, error or stop. Read timeouts just poll the stop flag.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match s.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return false,
        }
    }
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Sends the request to the store on a fresh connection (`Connection: close`) and reads the
/// whole answer. None when the store is unreachable or the answer is unreadable.
fn forward(backend: SocketAddr, req: &Req) -> Option<Resp> {
    let mut out = String::new();
    for (i, line) in req.head.split("\r\n").enumerate() {
        if i > 0 {
            let name = line.split(':').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&req.body);
    let mut s = TcpStream::connect_timeout(&backend, Duration::from_secs(2)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(&bytes).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let end = find(&buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(Resp { status_line, headers, body })
}

/// Relays a store answer (with a recomputed content-length); false (close) when there is none.
fn relay(s: &mut TcpStream, r: Option<Resp>) -> bool {
    let Some(r) = r else {
        let _ = s.shutdown(Shutdown::Both);
        return false;
    };
    let mut out = format!("{}\r\n", r.status_line);
    for (k, v) in &r.headers {
        if ["connection", "content-length", "transfer-encoding", "keep-alive"].iter().any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", r.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&r.body);
    s.write_all(&bytes).and_then(|_| s.flush()).is_ok()
}

fn write_resp(s: &mut TcpStream, status_line: &str, ct: &str, body: &[u8]) -> bool {
    let mut bytes =
        format!("{status_line}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).and_then(|_| s.flush()).is_ok()
}
