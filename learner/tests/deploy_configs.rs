//! The example configs in `deploy/` are documentation users copy: each must load with the
//! real parser (unknown keys are errors), so a format change cannot leave them stale.

use std::path::Path;

use conf::{ClusterFile, ReplicaConf, Role};

fn deploy(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

#[test]
fn replica_examples_load() {
    for (file, role) in [
        ("standalone/voter-1.toml", Role::Voter),
        ("standalone/learner-rack01.toml", Role::Learner),
        ("co-located/voter-1.toml", Role::Voter),
    ] {
        let conf = ReplicaConf::load(&deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(conf.role, role, "{file}");
        assert_eq!(conf.peers.len(), 3, "{file}: three initial voters");
        assert_eq!(conf.data_dir, Path::new("/var/lib/bootstorm"), "{file}");
        assert!(conf.listen.check.is_some(), "{file}: shows the check plane");
    }
}

#[test]
fn co_located_mode_uses_its_own_ports() {
    let conf = ReplicaConf::load(&deploy("co-located/voter-1.toml")).unwrap();
    // The other Raft service of seed 000 listens on 9000 / 50051 / 8080.
    for port in [
        conf.listen.raft.port(),
        conf.listen.admin.port(),
        conf.listen.boot.port(),
        conf.listen.check.expect("a check port").port(),
    ] {
        assert!(![9000, 50051, 8080].contains(&port), "port {port} clashes");
    }
}

#[test]
fn cluster_example_loads() {
    let cluster = ClusterFile::load(&deploy("cluster.toml")).unwrap();
    assert_eq!(cluster.replicas.len(), 4);
    assert!(cluster.replicas.iter().all(|r| r.check.is_some()));
    assert_eq!(
        cluster.replicas[0].role,
        Role::Learner,
        "rack-local learner first"
    );
}

#[test]
fn initramfs_cluster_example_loads_without_admin_credentials() {
    let cluster = ClusterFile::load(&deploy("initramfs/cluster.toml")).unwrap();
    assert_eq!(cluster.admin_cert, None, "an initramfs holds no admin key");
    assert_eq!(cluster.admin_key, None);
    assert_eq!(
        cluster.replicas[0].role,
        Role::Learner,
        "rack-local learners first"
    );
    assert_eq!(cluster.replicas[1].role, Role::Learner);
}
