//! Load generator for `bench/side-by-side`: drives one signaling server (thin relay, js-v1 or
//! edgesignal, all speaking the same wire format) through every scenario and prints one JSON line
//! per scenario on stdout. Progress goes to stderr.
//!
//! It reads its whole configuration, JWTs included, as one JSON object on stdin (the runner mints
//! the tokens; this program never signs anything). Every loop is bounded in count and time.
//!
//! Why it looks like this:
//! - One thread (tokio current-thread runtime + `LocalSet`): the runner pins it to one core, and a
//!   single thread keeps its cost in that core and lets the counters be plain `Cell`s.
//! - Latency is one-way, measured in this process: the send time (µs since start) rides in the
//!   frame's `correlationId` (`b<phase>.<µs>.<addressee>`), which every server copies to the
//!   receiver, so the receiver needs no shared map, and the frame itself proves which scenario it
//!   belongs to and that it reached the right socket.
//! - In rate scenarios the timestamp is taken when the scheduler hands the frame to the
//!   connection's writer, not when it hits the socket, so writer queueing (back-pressure) counts
//!   as latency instead of silently lowering the offered rate.
//! - Server CPU is the on-CPU time (utime+stime) of the server's processes at the window edges;
//!   this program's own CPU is read the same way and reported, so a saturated load generator is
//!   visible rather than mistaken for a slow server, and so is the machine's remaining busy time
//!   (another build running beside the benchmark).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Read as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::LocalSet;
use tokio::time::{sleep, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async, WebSocketStream};

type Ws = WebSocketStream<TcpStream>;

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 for userspace.
const TICKS_PER_S: f64 = 100.0;

#[derive(Deserialize)]
struct Config {
    /// `127.0.0.1:<port>` of the server; traffic goes nowhere else.
    addr: String,
    /// Prefix of every room id, unique per run so rooms are always new objects.
    room_prefix: String,
    /// One JWT per connection (distinct `sub`s), consumed in order.
    tokens: Vec<String>,
    /// Processes whose CPU and RSS are "the server" (workerd).
    server_pids: Vec<u32>,
    /// Processes reported separately (the Node host), to show they stay out of the path.
    #[serde(default)]
    host_pids: Vec<u32>,
    pair_samples: usize,
    /// Unmeasured frames and connects before the first measured ones, so that the numbers are
    /// of a warm isolate (JIT and wasm tier-up done), as a busy server's are.
    warmup_frames: usize,
    warmup_connects: usize,
    serial_connects: usize,
    rooms: usize,
    connect_in_flight: usize,
    idle_settle_ms: u64,
    trickle_rate: f64,
    trickle_secs: f64,
    burst_frames: usize,
    sweep: SweepConfig,
    /// How long after the last send a scenario waits for outstanding frames before counting
    /// them lost.
    drain_ms: u64,
    /// Quiet time between scenarios, so one scenario's tail (closes, backlog) stays out of the
    /// next one's CPU window.
    settle_ms: u64,
    /// Upper bound for one connect → `joined`.
    connect_timeout_ms: u64,
}

#[derive(Deserialize)]
struct SweepConfig {
    start: f64,
    factor: f64,
    max: f64,
    step_secs: f64,
    bisect: u32,
    p99_ms: f64,
}

/// The fields of a server frame this program looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(rename = "peerId", borrow)]
    peer_id: Option<Cow<'a, str>>,
}

/// Counters of the current phase (scenario or sweep step), shared by all reader tasks.
struct Shared {
    start: Instant,
    phase: Cell<u32>,
    received: Cell<u64>,
    /// Frames of an earlier phase that arrived late (already counted as lost there).
    stale: Cell<u64>,
    /// Frames that reached a connection they were not addressed to.
    misdelivered: Cell<u64>,
    errors: Cell<u64>,
    warnings: Cell<u64>,
    first_error: RefCell<Option<String>>,
    last_rx_us: Cell<u64>,
    latencies_us: RefCell<Vec<u32>>,
    notify: Notify,
    tokens: RefCell<std::vec::IntoIter<String>>,
    next_conn: Cell<u32>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn begin_phase(&self) -> u32 {
        let phase = self.phase.get() + 1;
        self.phase.set(phase);
        self.received.set(0);
        self.misdelivered.set(0);
        self.errors.set(0);
        self.warnings.set(0);
        self.last_rx_us.set(0);
        self.latencies_us.borrow_mut().clear();
        *self.first_error.borrow_mut() = None;
        phase
    }

    fn on_text(&self, conn: u32, text: &str, now_us: u64) {
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            return;
        };
        match frame.kind.as_deref() {
            // An error echoes our correlationId: it is a refusal, never a delivery.
            Some("error") => {
                self.errors.set(self.errors.get() + 1);
                self.first_error
                    .borrow_mut()
                    .get_or_insert_with(|| text.chars().take(300).collect());
                return;
            }
            Some("warning") => {
                self.warnings.set(self.warnings.get() + 1);
                return;
            }
            _ => {}
        }
        // edgesignal and js-v1 deliver `relay` frames; the thin relay forwards the sender's
        // frame verbatim. Both carry the sender's correlationId at the top level.
        let Some((phase, sent_us, to_conn)) = frame.correlation_id.as_deref().and_then(parse_stamp)
        else {
            return;
        };
        if to_conn != conn {
            self.misdelivered.set(self.misdelivered.get() + 1);
            return;
        }
        if phase != self.phase.get() {
            self.stale.set(self.stale.get() + 1);
            return;
        }
        self.received.set(self.received.get() + 1);
        self.last_rx_us.set(now_us);
        self.latencies_us
            .borrow_mut()
            .push(now_us.saturating_sub(sent_us).min(u32::MAX as u64) as u32);
        self.notify.notify_one();
    }

    /// Waits until `target` frames of the current phase arrived or `deadline` passed.
    async fn wait_received(&self, target: u64, deadline: Instant) -> bool {
        loop {
            if self.received.get() >= target {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = timeout(deadline - now, self.notify.notified()).await;
        }
    }

    /// Waits until no frame (of any phase) arrived for `quiet`, for at most `max`.
    async fn wait_quiet(&self, quiet: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        let seen = || self.received.get() + self.stale.get() + self.misdelivered.get();
        loop {
            let before = seen();
            sleep(quiet).await;
            if seen() == before || Instant::now() >= deadline {
                return;
            }
        }
    }

    fn next_token(&self) -> Result<String, String> {
        self.tokens
            .borrow_mut()
            .next()
            .ok_or_else(|| "ran out of tokens".to_owned())
    }
}

/// `b<phase>.<sent µs>.<receiving connection>`: the receiver checks the last part against its own
/// id, so a frame relayed to the wrong socket (or echoed to its sender) is caught, not counted.
fn stamp(out: &mut String, phase: u32, t_us: u64, to_conn: u32) {
    let _ = write!(out, "b{phase}.{t_us}.{to_conn}");
}

fn parse_stamp(cid: &str) -> Option<(u32, u64, u32)> {
    let mut parts = cid.strip_prefix('b')?.split('.');
    let (phase, t, to) = (parts.next()?, parts.next()?, parts.next()?);
    Some((phase.parse().ok()?, t.parse().ok()?, to.parse().ok()?))
}

/// An open, joined connection. Its reader and writer run as tasks; frames go through `tx`.
struct Conn {
    id: u32,
    peer_id: String,
    tx: mpsc::UnboundedSender<Message>,
}

impl Conn {
    fn send(&self, text: String) {
        let _ = self.tx.send(Message::Text(text.into()));
    }

    fn close(&self) {
        let _ = self.tx.send(Message::Close(None));
    }
}

/// A joined connection and its connect → `joined` time in µs, or why it failed.
type Connected = Result<(Conn, u64), String>;

/// TCP connect → WebSocket handshake (with `Authorization: Bearer`) → first frame `joined`.
/// Returns the connection and the time that took, in µs.
async fn connect(shared: &Rc<Shared>, cfg: &Config, room: &str) -> Connected {
    let token = shared.next_token()?;
    let started = Instant::now();
    let attempt = async {
        let tcp = TcpStream::connect(&cfg.addr)
            .await
            .map_err(|e| format!("tcp connect: {e}"))?;
        // Signaling frames are small and latency-bound; browsers disable Nagle too.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut req = format!("ws://{}/ws/{room}", cfg.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?;
        req.headers_mut().insert("authorization", auth);
        let (mut ws, _) = client_async(req, tcp)
            .await
            .map_err(describe_handshake_error)?;
        let peer_id = first_joined(&mut ws).await?;
        Ok::<_, String>((ws, peer_id))
    };
    let (ws, peer_id) = timeout(Duration::from_millis(cfg.connect_timeout_ms), attempt)
        .await
        .map_err(|_| format!("connect to {room} timed out"))??;
    let elapsed_us = started.elapsed().as_micros() as u64;
    let id = shared.next_conn.get();
    shared.next_conn.set(id + 1);
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::task::spawn_local(read_loop(shared.clone(), id, stream));
    tokio::task::spawn_local(write_loop(sink, rx));
    Ok((Conn { id, peer_id, tx }, elapsed_us))
}

/// A refused handshake shows its HTTP status and body (e.g. a `500 internal` for a bad var).
fn describe_handshake_error(e: WsError) -> String {
    match e {
        WsError::Http(resp) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            format!(
                "handshake refused: HTTP {} {}",
                resp.status(),
                body.chars().take(300).collect::<String>()
            )
        }
        e => format!("handshake: {e}"),
    }
}

async fn first_joined(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Frame =
                    serde_json::from_str(&text).map_err(|e| format!("bad first frame: {e}"))?;
                return match (frame.kind.as_deref(), frame.peer_id) {
                    (Some("joined"), Some(peer)) => Ok(peer.into_owned()),
                    _ => Err(format!(
                        "expected joined, got {}",
                        text.chars().take(200).collect::<String>()
                    )),
                };
            }
            Some(Ok(Message::Close(close))) => {
                return Err(format!("closed before joined: {close:?}"))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read before joined: {e}")),
            None => return Err("eof before joined".to_owned()),
        }
    }
}

async fn read_loop(shared: Rc<Shared>, conn: u32, mut stream: SplitStream<Ws>) {
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(text) => {
                let now = shared.now_us();
                shared.on_text(conn, &text, now);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}

/// Writes what is queued, batching everything already waiting into one flush (one syscall for a
/// burst instead of one per frame).
async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(first) = rx.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return;
        }
        while !closing {
            let Ok(msg) = rx.try_recv() else { break };
            closing = matches!(msg, Message::Close(_));
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings

fn proc_cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// CPU time the whole machine spent busy (every core, every process, interrupts included).
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<u64>();
    busy as f64 / TICKS_PER_S
}

/// utime+stime of a process in seconds at the finest resolution available. `/proc/<pid>/stat`
/// counts in 10 ms ticks, too coarse for a 50 ms window; the per-thread `schedstat` holds the
/// same on-CPU time (the kernel derives utime+stime from it) in ns, updated at least every
/// scheduler tick. Threads that ended are missing there, so `stat` is the fallback.
fn process_cpu_seconds(pid: &str) -> f64 {
    let per_thread = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
        });
    match per_thread {
        Some(ns) if ns > 0 => ns as f64 / 1e9,
        _ => proc_cpu_ticks(pid) as f64 / TICKS_PER_S,
    }
}

fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|p| process_cpu_seconds(&p.to_string()))
        .sum()
}

/// utime+stime in ticks, the unit of `machine_busy_seconds`, for the "other load" estimate.
fn tick_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|p| proc_cpu_ticks(&p.to_string()))
        .sum::<u64>() as f64
        / TICKS_PER_S
}

fn rss_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

fn others_ticks(cfg: &Config) -> f64 {
    machine_busy_seconds()
        - tick_seconds(&cfg.server_pids)
        - tick_seconds(&cfg.host_pids)
        - proc_cpu_ticks("self") as f64 / TICKS_PER_S
}

/// CPU of the server, the Node host and this program over a wall-clock window.
struct Window {
    at: Instant,
    server: f64,
    host: f64,
    me: f64,
    /// Machine busy time minus ours, both in ticks.
    others: f64,
}

struct Usage {
    wall_s: f64,
    server_cpu_s: f64,
    host_cpu_s: f64,
    loadgen_cpu_s: f64,
    /// Busy CPU of the machine that none of the three accounts for: other processes (a build
    /// running beside the benchmark) and kernel work not billed to a process.
    other_cpu_s: f64,
}

impl Usage {
    fn fields(&self) -> Value {
        json!({
            "wall_s": round3(self.wall_s),
            "server_cpu_s": round3(self.server_cpu_s),
            "server_cores": round3(self.server_cpu_s / self.wall_s.max(1e-9)),
            "host_cpu_s": round3(self.host_cpu_s),
            "loadgen_cpu_s": round3(self.loadgen_cpu_s),
            "loadgen_cores": round3(self.loadgen_cpu_s / self.wall_s.max(1e-9)),
            "other_cores": round3(self.other_cpu_s / self.wall_s.max(1e-9)),
        })
    }
}

impl Window {
    fn open(cfg: &Config) -> Window {
        Window {
            at: Instant::now(),
            server: cpu_seconds(&cfg.server_pids),
            host: cpu_seconds(&cfg.host_pids),
            me: process_cpu_seconds("self"),
            others: others_ticks(cfg),
        }
    }

    fn close(&self, cfg: &Config) -> Usage {
        Usage {
            wall_s: self.at.elapsed().as_secs_f64(),
            server_cpu_s: cpu_seconds(&cfg.server_pids) - self.server,
            host_cpu_s: cpu_seconds(&cfg.host_pids) - self.host,
            loadgen_cpu_s: process_cpu_seconds("self") - self.me,
            other_cpu_s: (others_ticks(cfg) - self.others).max(0.0),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and output

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of µs samples, in ms.
fn pct_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(round3(f64::from(sorted_us[rank - 1]) / 1000.0))
}

fn latency_fields(samples_us: &mut [u32]) -> Value {
    samples_us.sort_unstable();
    json!({
        "samples": samples_us.len(),
        "p50_ms": pct_ms(samples_us, 0.50),
        "p95_ms": pct_ms(samples_us, 0.95),
        "p99_ms": pct_ms(samples_us, 0.99),
        "max_ms": pct_ms(samples_us, 1.0),
    })
}

fn merge(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

fn emit(line: Value) {
    println!("{line}");
}

fn progress(msg: &str) {
    eprintln!("loadgen: {msg}");
}

/// Delivery counters of the current phase, for the scenario's JSON line.
fn delivery_fields(shared: &Shared, sent: u64) -> Value {
    json!({
        "sent": sent,
        "received": shared.received.get(),
        "lost": sent.saturating_sub(shared.received.get()),
        "misdelivered": shared.misdelivered.get(),
        "errors": shared.errors.get(),
        "warnings": shared.warnings.get(),
        "first_error": shared.first_error.borrow().clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Frames

/// A ~300-byte trickle-ICE candidate frame up to (excluding) the correlationId's value.
fn candidate_prefix(to: &str) -> String {
    format!(
        concat!(
            r#"{{"type":"candidate","to":"{}","candidate":{{"candidate":"candidate:842163049 1 udp 1677729535 "#,
            r#"203.0.113.77 61234 typ srflx raddr 10.0.0.23 rport 61234 generation 0 ufrag x8sZ network-id 1 network-cost 10","#,
            r#""sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"x8sZ"}},"correlationId":""#
        ),
        to
    )
}

/// An offer frame with a ~3 KB audio+video+data SDP, up to the correlationId's value.
fn offer_prefix(to: &str) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS stream0\r\n",
    );
    for (mid, media, codecs) in [
        ("0", "audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"),
        ("1", "video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45", "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:100 H264/90000\r\na=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:45 AV1/90000\r\n"),
        ("2", "application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=sctp-port:5000\r\na=max-message-size:262144\r\n"),
    ] {
        let _ = write!(
            sdp,
            "m={media}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:x8sZ\r\na=ice-pwd:Jd2r7yqVwQ0aXb1c9KpL3mNo\r\n\
             a=ice-options:trickle\r\na=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
             a=setup:actpass\r\na=mid:{mid}\r\na=sendrecv\r\na=msid:stream0 track{mid}\r\na=rtcp-mux\r\n{codecs}a=ssrc:{ssrc} cname:bench\r\n",
            ssrc = 1_000_000 + mid.len() * 7
        );
    }
    format!(
        r#"{{"type":"offer","to":"{to}","sdp":{},"correlationId":""#,
        serde_json::to_string(&sdp).expect("a string serializes")
    )
}

fn frame(prefix: &str, phase: u32, t_us: u64, to_conn: u32) -> String {
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    stamp(&mut out, phase, t_us, to_conn);
    out.push_str("\"}");
    out
}

/// Room `k`'s two peers: `a` sends to `b`.
struct Pair {
    a: Conn,
    b: Conn,
    to_b: String,
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn settle(cfg: &Config) {
    sleep(Duration::from_millis(cfg.settle_ms)).await;
}

/// One pair, one frame in flight at a time, alternating a ~3 KB offer and a candidate.
async fn pair_latency(shared: &Rc<Shared>, cfg: &Config) -> Result<(), String> {
    let room = format!("{}-pair", cfg.room_prefix);
    let (a, _) = connect(shared, cfg, &room).await?;
    let (b, _) = connect(shared, cfg, &room).await?;
    let prefixes = [offer_prefix(&b.peer_id), candidate_prefix(&b.peer_id)];
    one_at_a_time(shared, cfg, &a, &b, &prefixes, cfg.warmup_frames).await;
    settle(cfg).await;
    let window = Window::open(cfg);
    let sent = one_at_a_time(shared, cfg, &a, &b, &prefixes, cfg.pair_samples).await;
    let usage = window.close(cfg);
    let lat = latency_fields(&mut shared.latencies_us.borrow_mut());
    emit(merge(
        merge(
            merge(json!({ "scenario": "pair_latency" }), lat),
            delivery_fields(shared, sent),
        ),
        usage.fields(),
    ));
    a.close();
    b.close();
    settle(cfg).await;
    Ok(())
}

/// In a new phase, `n` frames A → B, each sent once the previous one arrived, alternating the
/// prefixes. Returns how many were sent (fewer than `n` after a loss).
async fn one_at_a_time(
    shared: &Shared,
    cfg: &Config,
    a: &Conn,
    b: &Conn,
    prefixes: &[String; 2],
    n: usize,
) -> u64 {
    let phase = shared.begin_phase();
    let mut sent = 0u64;
    for i in 0..n {
        a.send(frame(&prefixes[i % 2], phase, shared.now_us(), b.id));
        sent += 1;
        let deadline = Instant::now() + Duration::from_millis(cfg.drain_ms);
        if !shared.wait_received(sent, deadline).await {
            break; // lost: counted by the caller, and the rest would only repeat it
        }
    }
    sent
}

/// Connections one at a time, two per room (the first wakes a new object, the second joins it).
async fn serial_connects(shared: &Rc<Shared>, cfg: &Config) -> Result<(), String> {
    let mut warm = Vec::with_capacity(cfg.warmup_connects);
    for i in 0..cfg.warmup_connects {
        warm.push(
            connect(shared, cfg, &format!("{}-w{}", cfg.room_prefix, i / 2))
                .await?
                .0,
        );
    }
    for c in &warm {
        c.close();
    }
    settle(cfg).await;
    let window = Window::open(cfg);
    let mut times = Vec::with_capacity(cfg.serial_connects);
    let mut conns = Vec::with_capacity(cfg.serial_connects);
    let mut failed = 0u64;
    for i in 0..cfg.serial_connects {
        match connect(shared, cfg, &format!("{}-s{}", cfg.room_prefix, i / 2)).await {
            Ok((conn, us)) => {
                times.push(us.min(u32::MAX as u64) as u32);
                conns.push(conn);
            }
            Err(e) => {
                failed += 1;
                progress(&format!("serial connect failed: {e}"));
            }
        }
    }
    let usage = window.close(cfg);
    let n = times.len().max(1) as f64;
    let line = json!({
        "scenario": "connect_serial",
        "connected": times.len(),
        "failed": failed,
        "server_cpu_per_connect_ms": round3(usage.server_cpu_s * 1000.0 / n),
    });
    emit(merge(
        merge(line, latency_fields(&mut times)),
        usage.fields(),
    ));
    for c in &conns {
        c.close();
    }
    settle(cfg).await;
    Ok(())
}

/// `2 × rooms` connections with `connect_in_flight` handshakes in flight, then the idle memory
/// they hold. Returns the pairs for the relay scenarios.
async fn bulk_connects(shared: &Rc<Shared>, cfg: &Config) -> Result<Vec<Pair>, String> {
    let rss_before = rss_bytes(&cfg.server_pids);
    let window = Window::open(cfg);
    let mut results: Vec<(usize, Connected)> = stream::iter(0..cfg.rooms * 2)
        .map(|i| {
            let room = format!("{}-r{}", cfg.room_prefix, i / 2);
            async move { (i, connect(shared, cfg, &room).await) }
        })
        .buffer_unordered(cfg.connect_in_flight.max(1))
        .collect()
        .await;
    let usage = window.close(cfg);
    results.sort_by_key(|(i, _)| *i);
    let mut times = Vec::with_capacity(results.len());
    let mut failed = 0u64;
    let mut slots: Vec<Option<Conn>> = Vec::with_capacity(results.len());
    for (_, r) in results {
        match r {
            Ok((conn, us)) => {
                times.push(us.min(u32::MAX as u64) as u32);
                slots.push(Some(conn));
            }
            Err(e) => {
                if failed == 0 {
                    progress(&format!("bulk connect failed: {e}"));
                }
                failed += 1;
                slots.push(None);
            }
        }
    }
    let connected = times.len();
    let line = json!({
        "scenario": "connect_bulk",
        "in_flight": cfg.connect_in_flight,
        "connected": connected,
        "failed": failed,
        "connects_per_s": round3(connected as f64 / usage.wall_s.max(1e-9)),
        "server_cpu_per_connect_ms": round3(usage.server_cpu_s * 1000.0 / connected.max(1) as f64),
    });
    emit(merge(
        merge(line, latency_fields(&mut times)),
        usage.fields(),
    ));

    // Idle: nobody sends; what the server keeps per open connection (socket, object, isolate
    // state) is what remains of the RSS growth after it had time to settle.
    sleep(Duration::from_millis(cfg.idle_settle_ms)).await;
    let rss_after = rss_bytes(&cfg.server_pids);
    emit(json!({
        "scenario": "idle_memory",
        "connections": connected,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "bytes_per_connection": (rss_after as f64 - rss_before as f64) / connected.max(1) as f64,
    }));

    let mut pairs = Vec::with_capacity(cfg.rooms);
    let mut it = slots.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        match (a, b) {
            (Some(a), Some(b)) => pairs.push(Pair {
                to_b: candidate_prefix(&b.peer_id),
                a,
                b,
            }),
            (a, b) => {
                for c in a.iter().chain(b.iter()) {
                    c.close();
                }
            }
        }
    }
    Ok(pairs)
}

/// Every pair's A sends candidates to its B; together they offer `rate` frames/s for `secs`,
/// spread round-robin so each room trickles. Emits nothing; returns the step's JSON.
async fn offered_rate(
    shared: &Rc<Shared>,
    cfg: &Config,
    pairs: &[Pair],
    rate: f64,
    secs: f64,
) -> Value {
    let phase = shared.begin_phase();
    let total = (rate * secs).round() as u64;
    let window = Window::open(cfg);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut sent, mut next) = (0u64, 0usize);
    // Bounded in time even if this process falls far behind: whatever is not sent by then is
    // reported as a shortfall, not waited for.
    let hard_stop = secs * 2.0 + 1.0;
    while sent < total {
        ticker.tick().await;
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed > hard_stop {
            break;
        }
        let due = ((elapsed * rate) as u64).min(total);
        if due > sent {
            let now = shared.now_us();
            for _ in sent..due {
                let pair = &pairs[next];
                pair.a.send(frame(&pair.to_b, phase, now, pair.b.id));
                next = (next + 1) % pairs.len();
            }
            sent = due;
        }
    }
    let send_s = started.elapsed().as_secs_f64();
    let delivered = shared
        .wait_received(sent, Instant::now() + Duration::from_millis(cfg.drain_ms))
        .await;
    let usage = window.close(cfg);
    let lat = latency_fields(&mut shared.latencies_us.borrow_mut());
    let line = json!({
        "rate": rate,
        "secs": secs,
        "send_s": round3(send_s),
        // Sending took noticeably longer than planned: this process, not the server, set the pace.
        "loadgen_behind": sent < total || send_s > secs * 1.05 + 0.05,
        "all_delivered": delivered,
        "server_cpu_per_frame_us": round3(usage.server_cpu_s * 1e6 / shared.received.get().max(1) as f64),
    });
    merge(
        merge(merge(line, lat), delivery_fields(shared, sent)),
        usage.fields(),
    )
}

async fn trickle(shared: &Rc<Shared>, cfg: &Config, pairs: &[Pair]) {
    let step = offered_rate(shared, cfg, pairs, cfg.trickle_rate, cfg.trickle_secs).await;
    emit(merge(
        json!({ "scenario": "trickle", "rooms": pairs.len() }),
        step,
    ));
    settle(cfg).await;
}

/// Every A sends `burst_frames` at once; time until the last of them is delivered.
async fn burst(shared: &Rc<Shared>, cfg: &Config, pairs: &[Pair]) {
    let phase = shared.begin_phase();
    let window = Window::open(cfg);
    let t0 = shared.now_us();
    for pair in pairs {
        for _ in 0..cfg.burst_frames {
            pair.a.send(frame(&pair.to_b, phase, t0, pair.b.id));
        }
    }
    let sent = (pairs.len() * cfg.burst_frames) as u64;
    // Generous: a burst this size takes well under a second on any of the three servers.
    let deadline = Instant::now() + Duration::from_millis(cfg.drain_ms.max(10_000));
    let delivered = shared.wait_received(sent, deadline).await;
    let usage = window.close(cfg);
    let last = shared.last_rx_us.get();
    let lat = latency_fields(&mut shared.latencies_us.borrow_mut());
    let line = json!({
        "scenario": "burst",
        "rooms": pairs.len(),
        "frames_per_room": cfg.burst_frames,
        "all_delivered": delivered,
        "time_to_last_ms": if last > t0 { Some(round3((last - t0) as f64 / 1000.0)) } else { None },
    });
    emit(merge(
        merge(merge(line, lat), delivery_fields(shared, sent)),
        usage.fields(),
    ));
    settle(cfg).await;
}

/// Raises the offered rate geometrically until a step misses (p99 over the bound, or any loss),
/// then bisects between the last pass and the first miss. Steps are bounded in number by
/// `max` and `bisect`.
async fn sweep(shared: &Rc<Shared>, cfg: &Config, pairs: &[Pair]) {
    let sc = &cfg.sweep;
    let mut steps = Vec::new();
    let (mut best, mut miss): (Option<f64>, Option<f64>) = (None, None);
    let mut loadgen_bound = false;
    let mut run_step = async |rate: f64| -> bool {
        let step = offered_rate(shared, cfg, pairs, rate, sc.step_secs).await;
        let p99 = step["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
        let clean = ["lost", "misdelivered", "errors"]
            .iter()
            .all(|k| step[*k].as_u64() == Some(0));
        let ok = clean && p99 <= sc.p99_ms;
        let behind = step["loadgen_behind"].as_bool() == Some(true)
            || step["loadgen_cores"].as_f64().unwrap_or(0.0) > 0.95;
        progress(&format!(
            "sweep {rate:.0}/s: p99 {p99} ms, lost {}, {}",
            step["lost"],
            if ok { "pass" } else { "miss" }
        ));
        steps.push(merge(step, json!({ "pass": ok })));
        // A missed step can leave seconds of backlog in the server: the next step starts only
        // once nothing has arrived for a while.
        shared
            .wait_quiet(
                Duration::from_millis(cfg.settle_ms),
                Duration::from_secs(10),
            )
            .await;
        loadgen_bound |= behind;
        ok && !behind
    };
    let mut rate = sc.start;
    loop {
        if run_step(rate).await {
            best = Some(rate);
            if rate >= sc.max {
                break;
            }
            rate = (rate * sc.factor).min(sc.max).round();
        } else {
            miss = Some(rate);
            break;
        }
    }
    if let Some(high) = miss {
        let mut low = best.unwrap_or(0.0);
        for _ in 0..sc.bisect {
            let mid = ((low + high) / 2.0 / 100.0).round() * 100.0;
            if mid <= low || mid >= high {
                break;
            }
            if run_step(mid).await {
                best = Some(mid);
                low = mid;
            } else {
                break;
            }
        }
    }
    emit(json!({
        "scenario": "sweep",
        "rooms": pairs.len(),
        "p99_bound_ms": sc.p99_ms,
        "max_rate": best,
        "first_miss": miss,
        "loadgen_bound": loadgen_bound,
        "steps": steps,
    }));
}

async fn run(cfg: Config) -> Result<(), String> {
    let tokens = cfg.tokens.clone();
    let shared = Rc::new(Shared {
        start: Instant::now(),
        phase: Cell::new(0),
        received: Cell::new(0),
        stale: Cell::new(0),
        misdelivered: Cell::new(0),
        errors: Cell::new(0),
        warnings: Cell::new(0),
        first_error: RefCell::new(None),
        last_rx_us: Cell::new(0),
        latencies_us: RefCell::new(Vec::new()),
        notify: Notify::new(),
        tokens: RefCell::new(tokens.into_iter()),
        next_conn: Cell::new(0),
    });
    progress("pair latency");
    pair_latency(&shared, &cfg).await?;
    progress("serial connects");
    serial_connects(&shared, &cfg).await?;
    progress("bulk connects + idle memory");
    let pairs = bulk_connects(&shared, &cfg).await?;
    if pairs.is_empty() {
        return Err("no room has both peers connected".to_owned());
    }
    progress("trickle");
    trickle(&shared, &cfg, &pairs).await;
    progress("burst");
    burst(&shared, &cfg, &pairs).await;
    progress("sweep");
    sweep(&shared, &cfg, &pairs).await;
    for pair in &pairs {
        pair.a.close();
        pair.b.close();
    }
    emit(json!({ "scenario": "done", "late_frames": shared.stale.get() }));
    settle(&cfg).await;
    Ok(())
}

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("loadgen: reading the config from stdin: {e}");
        std::process::exit(2);
    }
    let cfg: Config = match serde_json::from_str(&input) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("loadgen: bad config on stdin: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = LocalSet::new().block_on(&rt, run(cfg));
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_rejects_foreign_ids() {
        let mut cid = String::new();
        stamp(&mut cid, 7, 123_456, 42);
        assert_eq!(parse_stamp(&cid), Some((7, 123_456, 42)));
        // A server-made correlationId (a ULID) or the sender's own text is not a delivery.
        assert_eq!(parse_stamp("01J9ZQ4T6X8D2K5M7N3P0R1S9V"), None);
        assert_eq!(parse_stamp("b7.123"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(pct_ms(&samples, 0.50), Some(50.0));
        assert_eq!(pct_ms(&samples, 0.99), Some(99.0));
        assert_eq!(pct_ms(&samples, 1.0), Some(100.0));
        assert_eq!(pct_ms(&[], 0.5), None);
    }

    #[test]
    fn frames_are_valid_json_with_the_stamp_as_correlation_id() {
        for prefix in [candidate_prefix("B"), offer_prefix("B")] {
            let text = frame(&prefix, 3, 99, 5);
            let value: Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(value["to"], "B");
            assert_eq!(value["correlationId"], "b3.99.5");
        }
        let sizes = (candidate_prefix("B").len(), offer_prefix("B").len());
        assert!(
            (250..400).contains(&sizes.0),
            "candidate frame ~300 bytes, got {}",
            sizes.0
        );
        assert!(
            (2000..4500).contains(&sizes.1),
            "offer SDP 2-4 KB, got {}",
            sizes.1
        );
    }
}
