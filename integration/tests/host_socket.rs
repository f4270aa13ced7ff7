//! The socket path: taken, stale, not a socket, not writable; removed on clean shutdown.

mod host;

use host::{spawn_in, start, system_toml, wait_timeout};
use std::time::Duration;

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let server = start(&system_toml(2000));
    let (_c, _) = server.connect("app").unwrap();
    let socket = server.socket.clone();
    assert!(socket.exists());
    let dir = server.dir.path().to_owned();
    let (status, log) = server.stop();
    assert!(status.success(), "{status:?} {log}");
    assert!(log.contains("shut down cleanly") && log.contains("server shutting down"), "{log}");
    assert!(!socket.exists(), "socket file left in {}", dir.display());
}

#[test]
fn socket_file_mode_is_set_explicitly() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |server: &host::Server| std::fs::metadata(&server.socket).unwrap().permissions().mode() & 0o777;
    let default = start(&system_toml(2000));
    assert_eq!(mode(&default), 0o600, "default: only the server's uid may connect");
    let group =
        start(&system_toml(2000).replace("hello_timeout_ms = 2000", "hello_timeout_ms = 2000\nsocket_mode = 0o660"));
    assert_eq!(mode(&group), 0o660, "exactly the configured bits, whatever the umask");
}

#[test]
fn socket_taken_by_a_live_server_is_an_error() {
    let first = start(&system_toml(2000));
    let (mut second, stderr, listening) = spawn_in(first.dir.path(), &system_toml(2000), &[]);
    assert!(!listening);
    let status = wait_timeout(&mut second, Duration::from_secs(10));
    let log = host::drain(&stderr);
    assert!(!status.success());
    assert!(log.contains("memserver.sock is taken: a live server is accepting connections on it"), "{log}");
    assert!(first.connect("app").is_ok(), "the first server still serves");
}

#[test]
fn stale_socket_file_is_replaced_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("memserver.sock")).unwrap());
    assert!(dir.path().join("memserver.sock").exists());
    let (mut child, stderr, listening) = spawn_in(dir.path(), &system_toml(2000), &[]);
    assert!(listening, "{}", host::drain(&stderr));
    // The log is written by the server's log thread: read it while the server lives.
    let log = host::drain(&stderr);
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("replaced stale socket memserver.sock (no server was listening on it)"), "{log}");
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("memserver.sock"), b"precious").unwrap();
    let (mut child, stderr, listening) = spawn_in(dir.path(), &system_toml(2000), &[]);
    assert!(!listening);
    assert!(!wait_timeout(&mut child, Duration::from_secs(10)).success());
    assert!(host::drain(&stderr).contains("memserver.sock exists and is not a socket; not replacing it"));
    assert_eq!(std::fs::read(dir.path().join("memserver.sock")).unwrap(), b"precious");
}

#[test]
fn unwritable_socket_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, stderr, listening) = spawn_in(dir.path(), &system_toml(2000), &["--socket", "missing/dir/x.sock"]);
    assert!(!listening);
    assert!(!wait_timeout(&mut child, Duration::from_secs(10)).success());
    let log = host::drain(&stderr);
    assert!(log.contains("cannot bind socket missing/dir/x.sock") && log.contains("writable?"), "{log}");
}

#[test]
fn invalid_system_description_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = system_toml(2000).replace("quota_pages = 16\n", "quota_pages = 99999\n");
    let (mut child, stderr, listening) = spawn_in(dir.path(), &bad, &[]);
    assert!(!listening);
    assert_eq!(wait_timeout(&mut child, Duration::from_secs(10)).code(), Some(2));
    let log = host::drain(&stderr);
    assert!(log.contains("client[2].quota_pages = 99999 exceeds server.pool_pages = 16384"), "{log}");
}
