//! haproxy on loopback in front of a test's hub replicas: the machine's `haproxy` (Debian's),
//! in TCP mode, balancing connections over the backends and taking a backend out once its
//! port stops accepting (`check inter 500ms fall 2 rise 1`). TLS goes through untouched, so
//! clients verify the hubs' own serving certificate. Timeouts are short where a test waits
//! on them (connecting, health checks) and an hour where a connection is meant to stay open
//! (watches, device tunnels). The configuration is written to a temporary directory; haproxy
//! runs in the foreground as a child of the test and is killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs haproxy; `PATH` is searched too.
const DEBIAN_BINARY: &str = "/usr/sbin/haproxy";

/// How connections are spread over the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
}

pub struct Haproxy {
    /// The configuration and haproxy's own log (`haproxy.log`).
    pub dir: PathBuf,
    port: u16,
    backends: Vec<u16>,
    child: Option<Child>,
}

impl Haproxy {
    /// haproxy on a free loopback port, in front of `127.0.0.1:<port>` for every port of
    /// `backends`, balancing round robin; returns once its port accepts connections.
    pub fn start(backends: &[u16]) -> Haproxy {
        Self::start_with(backends, Balance::RoundRobin)
    }

    pub fn start_with(backends: &[u16], balance: Balance) -> Haproxy {
        assert!(
            installed(),
            "the tests need haproxy (`apt-get install haproxy`; scripts/test.sh installs it)"
        );
        assert!(!backends.is_empty(), "haproxy needs at least one backend");
        let dir = std::env::temp_dir().join(format!("faros-haproxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create the haproxy directory");
        let mut haproxy = Haproxy {
            dir,
            port: 0,
            backends: backends.to_vec(),
            child: None,
        };
        // A port found free may be taken before haproxy binds it: then again on another.
        for attempt in 1.. {
            haproxy.port = crate::etcd::free_port();
            let config = config(haproxy.port, backends, balance);
            std::fs::write(haproxy.dir.join("haproxy.cfg"), config).expect("write the haproxy configuration");
            match haproxy.try_spawn() {
                Ok(()) => break,
                Err(exited) if attempt < 3 => eprintln!("{exited}; trying again on another port"),
                Err(exited) => panic!("{exited}"),
            }
        }
        haproxy
    }

    /// Starts haproxy and waits until it listens; an error if it exits first.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("haproxy.log"))
            .expect("open the haproxy log");
        let child = Command::new(binary())
            .arg("-f")
            .arg(self.dir.join("haproxy.cfg"))
            // Foreground, no daemon, no master process: one child to kill.
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("haproxy exited ({status}):\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The backends' ports, in the configuration's order.
    pub fn backends(&self) -> &[u16] {
        &self.backends
    }

    /// What haproxy printed (warnings, backends going down and up).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// Path of the configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("haproxy configuration and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The configuration: one TCP frontend on `port`, one backend per port of `backends`.
pub fn config(port: u16, backends: &[u16], balance: Balance) -> String {
    let balance = match balance {
        Balance::RoundRobin => "roundrobin",
        Balance::LeastConn => "leastconn",
    };
    let mut config = format!(
        "\
global
    maxconn 4096

defaults
    mode tcp
    # A backend that refuses the connection is tried again, then another one is picked.
    retries 3
    option redispatch 1
    timeout connect 1s
    timeout check 1s
    # Watches and device tunnels stay open for as long as the hub keeps them.
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s

frontend hub
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance {balance}
    # A replica taken out closes its connections, so clients reconnect to the others.
    default-server check inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
"
    );
    for (i, backend) in backends.iter().enumerate() {
        config.push_str(&format!("    server replica{i} 127.0.0.1:{backend}\n"));
    }
    config
}

/// Whether haproxy is on this machine.
pub fn installed() -> bool {
    Command::new(binary())
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn binary() -> PathBuf {
    let debian = Path::new(DEBIAN_BINARY);
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("haproxy")
    }
}
