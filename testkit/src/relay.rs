//! A TCP relay on loopback that a test can cut: a client connected through it loses its
//! connections and cannot make new ones until the relay is restored, while other clients of
//! the same server carry on. This is how a test stalls one client (a hub's etcd watch, say)
//! without stopping the server.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Relay {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every relayed connection, to close them when the relay is cut.
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays connections to `target` from a free loopback port.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("the relay's address").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::spawn(move || {
            for incoming in listener.incoming() {
                if accepting.stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = incoming else { continue };
                if accepting.cut.load(Ordering::Acquire) {
                    // Refused: the connection closes at once.
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = relay(&accepting, client, server);
            }
        });
        Relay { port, shared }
    }

    /// The relay's own port: what the client connects to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::Release);
        for stream in self.shared.open.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Accepts and relays connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.shared.stopped.store(true, Ordering::Release);
        // Wakes the accepting thread so it sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(shared: &Shared, client: TcpStream, server: TcpStream) -> io::Result<()> {
    let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
    open.push(client.try_clone()?);
    open.push(server.try_clone()?);
    drop(open);
    for (mut from, mut to) in [(client.try_clone()?, server.try_clone()?), (server, client)] {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok(())
}
