//! Issue 20: `ibkr-oauth serve` as a real process with an open-file limit of 256, under a few
//! hundred hostile local connections (half idle, half trickling headers: slowloris), keeps
//! answering a client that sends its request at once, on loopback TCP (with the secret) and
//! on the unix socket. The honest client's latency is printed (run with `--nocapture`), not
//! asserted: the bounds below are limits only a hang reaches.

mod common;

use std::io::{BufRead as _, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, TestSandbox, VARS};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const HOSTILE: usize = 300;
const FD_LIMIT: &str = "256";
/// Only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(30);

trait Stream: Read + Write + Send {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()>;
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
}

impl Stream for TcpStream {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
}

impl Stream for UnixStream {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        UnixStream::set_nonblocking(self, on)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, d)
    }
}

/// The agent under `prlimit --nofile=256`, and how to reach it.
struct Agent {
    child: Child,
    connect: Box<dyn Fn() -> std::io::Result<Box<dyn Stream>> + Send + Sync>,
    secret_header: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(sandbox: &TestSandbox, unix: bool) -> Agent {
    let mut command = std::process::Command::new("prlimit");
    command
        .arg(format!("--nofile={FD_LIMIT}:{FD_LIMIT}"))
        .arg("--")
        .arg(BIN);
    for var in VARS {
        command.env_remove(var);
    }
    command
        .env("IBKR_BASE_URL", sandbox.running.base_url())
        .env("IBKR_CLIENT_ID", common::CLIENT_ID)
        .env("IBKR_KEY_ID", common::KEY_ID)
        .env("IBKR_PRIVATE_KEY", &sandbox.private_key)
        .env("IBKR_AGENT_SECRET", SECRET)
        .arg("serve");
    let socket = sandbox.dir.path().join("agent.sock");
    if unix {
        command.arg("--socket").arg(&socket);
    } else {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit and the agent start");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .expect("the ready line");
    assert!(ready.contains("handing out tokens on"), "{ready}");
    if unix {
        Agent {
            child,
            connect: Box::new(move || {
                UnixStream::connect(&socket).map(|s| Box::new(s) as Box<dyn Stream>)
            }),
            secret_header: String::new(),
        }
    } else {
        let addr: std::net::SocketAddr = ready
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("an address in {ready:?}"));
        Agent {
            child,
            connect: Box::new(move || {
                TcpStream::connect(addr).map(|s| Box::new(s) as Box<dyn Stream>)
            }),
            secret_header: format!("x-ibkr-agent-secret: {SECRET}\r\n"),
        }
    }
}

/// One GET /token sent at once: its status line and how long the answer took.
fn honest(agent: &Agent) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = (agent.connect)().expect("the honest client connects");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream
        .write_all(
            format!(
                "GET /token HTTP/1.1\r\nHost: agent\r\n{}Connection: close\r\n\r\n",
                agent.secret_header
            )
            .as_bytes(),
        )
        .expect("the honest request");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the honest client got no answer within {LIMIT:?}")
        }
        Err(e) => panic!("the honest client's read failed: {e}"),
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default().to_owned();
    (status, started.elapsed())
}

/// Whether the agent closed this hostile connection.
fn closed(stream: &mut Box<dyn Stream>) -> bool {
    let mut byte = [0u8; 64];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => true, // an error answer (408...) then the close
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn attack(unix: bool) {
    let sandbox = TestSandbox::start();
    let agent = start(&sandbox, unix);
    // A first request fetches the token: what follows measures the agent alone.
    let (status, cold) = honest(&agent);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    let mut hostile: Vec<Box<dyn Stream>> = Vec::new();
    for i in 0..HOSTILE {
        let Ok(mut stream) = (agent.connect)() else {
            continue; // the backlog is full: that is the attacker's problem
        };
        if i % 2 == 1 {
            // Slowloris: a request line and never the end of the headers.
            let _ = stream.write_all(b"GET /token HTTP/1.1\r\nHost: agent\r\n");
        }
        let _ = stream.set_nonblocking(true);
        hostile.push(stream);
    }
    let opened = hostile.len();
    // The slowloris half trickles a header line every 100 ms while the honest client asks.
    let trickling = Arc::new(AtomicBool::new(true));
    let on = Arc::clone(&trickling);
    let trickler = std::thread::spawn(move || {
        while on.load(Ordering::Relaxed) {
            for stream in hostile.iter_mut().skip(1).step_by(2) {
                let _ = stream.write_all(b"X-Slow: 1\r\n");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        hostile
    });

    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (status, took) = honest(&agent);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        latencies.push(took);
    }
    trickling.store(false, Ordering::Relaxed);
    let mut hostile = trickler.join().expect("the trickler");
    latencies.sort();
    eprintln!(
        "agent on {}, open-file limit {FD_LIMIT}, {opened} hostile connections ({} slowloris): \
         honest GET /token latency min {:?}, median {:?}, max {:?} (first, cold: {cold:?})",
        if unix { "unix socket" } else { "loopback TCP" },
        opened / 2,
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );

    // The agent shed hostile connections to stay under its cap (96 at this limit).
    let started = Instant::now();
    loop {
        let shut = hostile.iter_mut().map(closed).filter(|c| *c).count();
        if shut + 96 >= opened {
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "only {shut} of {opened} hostile connections were closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_honest_client_is_served_during_a_connection_flood_on_loopback_tcp() {
    attack(false);
}

#[test]
fn an_honest_client_is_served_during_a_connection_flood_on_the_unix_socket() {
    attack(true);
}
