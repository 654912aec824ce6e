//! Black-box test of `bootstorm serve`: three voter processes of the real binary, configured
//! with each other as peers, report ready on stdout; the leader is killed with SIGKILL; the
//! survivors elect a new leader (observed through their `/metrics`); SIGTERM stops them
//! gracefully with exit status 0.

mod cluster_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_support::*;
use conf::{Listen, Peer, Role};

/// Bound on a replica's start (spawn to ready line) and on each cluster-level wait.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills (SIGKILL, by pid) every child still running when the test ends, pass or fail.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

struct Planned {
    name: String,
    config: PathBuf,
    log: PathBuf,
    metrics: SocketAddr,
}

fn plan(root: &Path, attempt: u32) -> Vec<Planned> {
    let names = ["voter-1", "voter-2", "voter-3"];
    let certs = certs(&root.join(format!("certs-{attempt}")), &names);
    let ports = free_udp_ports(9);
    let listen = |i: usize| Listen {
        raft: loopback(ports[3 * i]),
        admin: loopback(ports[3 * i + 1]),
        boot: loopback(ports[3 * i + 2]),
        metrics: Some(loopback(free_tcp_port())),
        check: None,
    };
    let listens: Vec<Listen> = (0..3).map(listen).collect();
    let peers: Vec<Peer> = (0..3)
        .map(|i| Peer {
            node_id: i as u64 + 1,
            name: names[i].to_owned(),
            raft: listens[i].raft,
            admin: listens[i].admin,
            boot: listens[i].boot,
        })
        .collect();
    (0..3)
        .map(|i| {
            let dir = root.join(format!("attempt-{attempt}"));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = replica_conf(
                &dir,
                &certs,
                i as u64 + 1,
                names[i],
                Role::Voter,
                listens[i].clone(),
                peers.clone(),
            );
            let config = dir.join(format!("{}.toml", names[i]));
            std::fs::write(&config, toml::to_string(&conf).unwrap()).unwrap();
            Planned {
                name: names[i].to_owned(),
                config,
                log: dir.join(format!("{}.log", names[i])),
                metrics: listens[i].metrics.unwrap(),
            }
        })
        .collect()
}

/// Spawns `bootstorm serve --config FILE --json` and waits for its ready line.
fn spawn(planned: &Planned) -> Result<(Child, serde_json::Value), String> {
    let log = std::fs::File::create(&planned.log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(["serve", "--json", "--config"])
        .arg(&planned.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn bootstorm");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Some(Ok(line))) => line,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&planned.log).unwrap_or_default();
            return Err(format!(
                "{} gave no ready line ({other:?}); log:\n{log}",
                planned.name
            ));
        }
    };
    let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert_eq!(ready["event"], "ready", "{line}");
    assert_eq!(ready["name"], planned.name.as_str(), "{line}");
    assert_eq!(ready["role"], "voter", "{line}");
    assert_eq!(
        ready["metrics"],
        planned.metrics.to_string().as_str(),
        "{line}"
    );
    Ok((child, ready))
}

/// `GET /metrics` from `addr`; `None` if the replica does not answer.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .starts_with("HTTP/1.1 200")
        .then(|| {
            response
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
        })
        .flatten()
}

/// The value of the gauge `name` in a scrape.
fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls the replicas' `/metrics` (the only observation point of a black-box daemon until the
/// admin plane answers Status) until one of them is leader and not `not`; returns its index.
fn wait_leader_by_metrics(planned: &[&Planned], not: Option<usize>) -> usize {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for (i, p) in planned.iter().enumerate() {
            if Some(i) == not {
                continue;
            }
            let Some(body) = scrape(p.metrics) else {
                continue;
            };
            if gauge(&body, "bootstorm_raft_is_leader") == Some(1.0) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader within {READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn serve_processes_elect_a_new_leader_after_the_leader_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut children = Children(Vec::new());
    let mut planned = Vec::new();
    let started = Instant::now();
    for attempt in 1..=3 {
        planned = plan(dir.path(), attempt);
        children.0.clear();
        let mut failed = None;
        for p in &planned {
            match spawn(p) {
                Ok((child, ready)) => {
                    println!("{ready}");
                    children.0.push((p.name.clone(), child));
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        match failed {
            None => break,
            Some(error) if attempt < 3 => {
                println!("attempt {attempt} failed (port clash?), retrying: {error}");
                for (_, child) in &mut children.0 {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Some(error) => panic!("{error}"),
        }
    }
    println!("3 replicas ready in {} ms", started.elapsed().as_millis());
    let refs: Vec<&Planned> = planned.iter().collect();
    let leader = wait_leader_by_metrics(&refs, None);
    println!(
        "leader {} elected {} ms after spawn",
        planned[leader].name,
        started.elapsed().as_millis()
    );

    // SIGKILL the leader by its pid (std's Child::kill).
    let killed_at = Instant::now();
    children.0[leader].1.kill().expect("kill -9 the leader");
    children.0[leader].1.wait().unwrap();
    let new_leader = wait_leader_by_metrics(&refs, Some(leader));
    println!(
        "leader {} killed (SIGKILL); {} leads {} ms later",
        planned[leader].name,
        planned[new_leader].name,
        killed_at.elapsed().as_millis()
    );
    let body = scrape(planned[new_leader].metrics).unwrap();
    assert!(
        gauge(&body, "bootstorm_raft_term").unwrap() >= 2.0,
        "{body}"
    );

    // SIGTERM the survivors: graceful shutdown, exit status 0.
    for (i, (name, child)) in children.0.iter_mut().enumerate() {
        if i == leader {
            continue;
        }
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = std::fs::read_to_string(&planned[i].log).unwrap_or_default();
        assert!(exit.success(), "{name} exited with {exit}; log:\n{log}");
    }
}
