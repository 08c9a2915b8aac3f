//! `strata console`: it prints the address it serves (and nothing else on stdout), serves the pages there, and
//! refuses a bad token as a usage error. The pages themselves are tested in `pgstrata-console`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use crate::support::{Db, strata, strata_process};

/// GET `path` from `host:port` with plain HTTP/1.1; the status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the console");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, text)
}

/// The console process, stopped however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn console_prints_its_address_and_serves_the_pages() {
    let db = Db::new();
    let mut child = Running(
        strata_process()
            .args([
                "console",
                "--listen",
                "127.0.0.1:0",
                "--read-only",
                "-d",
                &db.url(),
            ])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata console starts"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let url = line
        .strip_prefix("strata console: http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(addr, _)| addr.to_string())
        .unwrap_or_else(|| panic!("the first line names the address: {line:?}"));
    assert!(url.starts_with("127.0.0.1:"), "{line}");
    let (status, page) = get(&url, "/runs");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("read-only"), "{page}");
    let (status, json) = get(&url, "/api/overview");
    assert_eq!(status, 200, "{json}");
    assert!(
        json.contains(&format!("\"database\":\"{}\"", db.name())),
        "{json}"
    );
}

#[test]
fn console_refuses_a_short_token_as_a_usage_error() {
    let db = Db::new();
    let run = crate::support::run(strata().args(["console", "--token", "short", "-d", &db.url()]));
    let run = run.expect_code(2);
    assert!(run.says("at least 16 characters"), "{}", run.stderr);
}
