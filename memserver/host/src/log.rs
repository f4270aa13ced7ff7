//! The server's log, which never blocks the event loop.
//!
//! Every line goes into a bounded queue that one writer thread drains to stderr. The event loop
//! only ever takes a lock that the writer holds for a queue operation, never across a write, so
//! a stderr that nobody reads (a full pipe, a stopped terminal) stalls the writer thread and
//! nothing else: lines that find the queue full are dropped and counted, and when stderr takes
//! lines again the writer first says how many were lost. Each source of lines (the server
//! itself, a client, the uid of a connection not yet admitted) is rate-limited on its own (a
//! token bucket of [`BURST`] lines refilled at [`LINES_PER_SECOND`]), so one party cannot fill
//! the log with refusals and hide everyone else's lines; a source's suppressed lines are
//! counted and reported with its next line.
//!
//! Before [`start`] (unit tests, tools that use the library) lines go straight to stderr.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use protocol::ClientId;

/// Lines the queue holds while stderr does not take them.
pub const QUEUE_LINES: usize = 256;
/// Lines one source may log at once before its rate limit applies.
pub const BURST: u32 = 20;
/// Lines per second a source may log in the long run.
pub const LINES_PER_SECOND: u32 = 5;
/// Sources tracked one by one; beyond this many, the rest share one budget.
const SOURCES_MAX: usize = 1024;

/// Who a log line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The server itself (start, stop, its own failures): not rate-limited.
    Server,
    /// An admitted client.
    Client(ClientId),
    /// A connection not admitted (yet), by the uid the kernel reports for its peer.
    Uid(u32),
    /// Every source past [`SOURCES_MAX`].
    Others,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Server => f.write_str("the server"),
            Source::Client(id) => write!(f, "client {id}"),
            Source::Uid(uid) => write!(f, "uid {uid}"),
            Source::Others => f.write_str("other sources"),
        }
    }
}

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    last: Instant,
    suppressed: u64,
}

/// The per-source rate limits.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: HashMap<Source, Bucket>,
}

impl RateLimits {
    /// Whether `source` may log a line at `now`; `Ok(n)` with the lines of that source
    /// suppressed since its last line, `Err(())` if this one is suppressed too.
    #[allow(clippy::result_unit_err)]
    pub fn admit(&mut self, source: Source, now: Instant) -> Result<u64, ()> {
        if source == Source::Server {
            return Ok(0);
        }
        let source = if self.buckets.len() >= SOURCES_MAX && !self.buckets.contains_key(&source) {
            Source::Others
        } else {
            source
        };
        let bucket = self.buckets.entry(source).or_insert(Bucket { tokens: BURST, last: now, suppressed: 0 });
        let elapsed = now.saturating_duration_since(bucket.last);
        let refill = elapsed.as_millis().saturating_mul(u128::from(LINES_PER_SECOND)) / 1000;
        if refill > 0 {
            bucket.tokens = u32::try_from(refill).unwrap_or(BURST).saturating_add(bucket.tokens).min(BURST);
            bucket.last = now;
        }
        if bucket.tokens == 0 {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            return Err(());
        }
        bucket.tokens -= 1;
        Ok(std::mem::take(&mut bucket.suppressed))
    }
}

/// The queue between the event loop and the writer thread.
#[derive(Default)]
struct Queue {
    lines: VecDeque<String>,
    dropped: u64,
    /// Lines taken by the writer and not yet written.
    writing: usize,
}

struct Sink {
    queue: Mutex<Queue>,
    ready: Condvar,
    limits: Mutex<RateLimits>,
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

impl Sink {
    /// A sink whose writer thread writes to `out`.
    fn spawn(out: impl std::io::Write + Send + 'static) -> std::io::Result<Arc<Sink>> {
        let sink = Arc::new(Sink { queue: Mutex::default(), ready: Condvar::new(), limits: Mutex::default() });
        let writer = sink.clone();
        std::thread::Builder::new().name("memserver-log".into()).spawn(move || write_forever(&writer, out))?;
        Ok(sink)
    }

    /// Queues one line from `source`, unless its rate limit or a full queue drops it.
    fn push(&self, source: Source, args: fmt::Arguments<'_>) {
        let suppressed = match self.limits.lock().map(|mut l| l.admit(source, Instant::now())) {
            Ok(Ok(n)) => n,
            Ok(Err(())) => return,
            Err(_) => 0,
        };
        let mut text = format!("memserver: {args}");
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} earlier lines about {source} suppressed)"));
        }
        let Ok(mut q) = self.queue.lock() else { return };
        if q.lines.len() >= QUEUE_LINES {
            q.dropped = q.dropped.saturating_add(1);
            return;
        }
        q.lines.push_back(text);
        drop(q);
        self.ready.notify_one();
    }

    /// Waits at most `limit` until every queued line is written.
    fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let Ok(mut q) = self.queue.lock() else { return };
        while !q.lines.is_empty() || q.writing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            q = match self.ready.wait_timeout(q, left) {
                Ok((q, _)) => q,
                Err(_) => return,
            };
        }
    }
}

/// Starts the writer thread on `out` (stderr for the server). Later calls do nothing.
pub fn start_with(out: impl std::io::Write + Send + 'static) -> std::io::Result<()> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let _ = SINK.set(Sink::spawn(out)?);
    Ok(())
}

/// Starts the writer thread on stderr.
pub fn start() -> std::io::Result<()> {
    start_with(std::io::stderr())
}

fn write_forever(sink: &Sink, mut out: impl std::io::Write) {
    loop {
        let (lines, dropped) = {
            let Ok(mut q) = sink.queue.lock() else { return };
            while q.lines.is_empty() {
                q = match sink.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            let lines: Vec<String> = q.lines.drain(..).collect();
            q.writing = lines.len();
            (lines, std::mem::take(&mut q.dropped))
        };
        let mut text = String::new();
        if dropped > 0 {
            text.push_str(&format!("memserver: {dropped} log lines dropped (stderr was not taking them)\n"));
        }
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        // Blocks as long as stderr does; only this thread waits.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        if let Ok(mut q) = sink.queue.lock() {
            q.writing = 0;
        }
        sink.ready.notify_all();
    }
}

/// Logs one line from `source` (prefixed `memserver: `) without blocking.
pub fn line(source: Source, args: fmt::Arguments<'_>) {
    match SINK.get() {
        Some(sink) => sink.push(source, args),
        None => eprintln!("memserver: {args}"),
    }
}

/// Waits at most `limit` for the writer to write every queued line (at shutdown).
pub fn flush(limit: Duration) {
    if let Some(sink) = SINK.get() {
        sink.flush(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_hears_of_what_it_lost() {
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        let uid = Source::Uid(65534);
        for _ in 0..BURST {
            assert_eq!(limits.admit(uid, t0), Ok(0));
        }
        assert_eq!(limits.admit(uid, t0), Err(()));
        assert_eq!(limits.admit(uid, t0), Err(()));
        // Another source is not affected, nor is the server.
        assert_eq!(limits.admit(Source::Client(3), t0), Ok(0));
        for _ in 0..1000 {
            assert_eq!(limits.admit(Source::Server, t0), Ok(0));
        }
        // One line's worth of time later: one line, carrying the count of those suppressed.
        let later = t0 + Duration::from_millis(1000 / u64::from(LINES_PER_SECOND));
        assert_eq!(limits.admit(uid, later), Ok(2));
        assert_eq!(limits.admit(uid, later), Err(()));
    }

    /// A writer that blocks until the test opens it, like a pipe nobody reads.
    struct Gate {
        open: std::sync::mpsc::Receiver<()>,
        written: Arc<Mutex<String>>,
    }

    impl std::io::Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.open.recv();
            self.written.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_never_blocks_the_logger_and_the_loss_is_reported() {
        let (open, gate) = std::sync::mpsc::channel();
        let written = Arc::new(Mutex::new(String::new()));
        let sink = Sink::spawn(Gate { open: gate, written: written.clone() }).unwrap();
        // The writer takes the first line and blocks on it; the queue then fills and overflows.
        sink.push(Source::Server, format_args!("first"));
        while sink.queue.lock().unwrap().writing == 0 {
            std::thread::yield_now();
        }
        for i in 0..QUEUE_LINES + 100 {
            sink.push(Source::Server, format_args!("line {i}"));
        }
        assert_eq!(sink.queue.lock().unwrap().dropped, 100);
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        sink.flush(Duration::from_secs(10));
        let text = written.lock().unwrap().clone();
        assert!(text.starts_with("memserver: first\nmemserver: 100 log lines dropped"), "{text}");
        assert!(
            text.contains(&format!("line {}\n", QUEUE_LINES - 1)) && !text.contains(&format!("line {}\n", QUEUE_LINES))
        );
    }

    #[test]
    fn sources_past_the_table_share_one_budget() {
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        for uid in 0..SOURCES_MAX as u32 {
            assert_eq!(limits.admit(Source::Uid(uid), t0), Ok(0));
        }
        let extra = (0..).map(|i| limits.admit(Source::Uid(1_000_000 + i), t0)).take_while(Result::is_ok).count();
        assert_eq!(extra, BURST as usize, "every new source draws on the one shared bucket");
    }
}
