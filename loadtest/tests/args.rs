//! Argument validation of `bootstorm-loadtest commits`: the target is exactly one of
//! `--spawn` / `--cluster`, counts and clients are bounded, connections fit the admin plane's
//! limits, and the defaults make a bounded run.

use bootstorm_loadtest::cli::{
    BaselinePeer, Cli, Command, CommitsPlan, TargetPlan, ADMIN_BIDI_STREAMS_CONCURRENT_MAX,
    COMMITS_CONNECTIONS_MAX, MAX_SECONDS_DEFAULT,
};
use clap::Parser as _;

fn plan(args: &[&str]) -> anyhow::Result<CommitsPlan> {
    let argv = std::iter::once("bootstorm-loadtest").chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        Command::Commits(args) => args.plan(),
        _ => anyhow::bail!("not a commits command"),
    }
}

fn error(args: &[&str]) -> String {
    format!(
        "{:#}",
        plan(args).expect_err("these arguments must be refused")
    )
}

#[test]
fn defaults_are_bounded() {
    let plan = plan(&["commits", "--spawn"]).unwrap();
    assert_eq!(plan.clients, 1);
    assert_eq!(plan.connections, 1);
    assert_eq!(plan.count, 2_000);
    assert_eq!(plan.max_seconds, MAX_SECONDS_DEFAULT);
    assert_eq!(plan.baseline, None);
    assert_eq!(plan.rounds, 1, "one run unless --rounds");
    assert!(matches!(
        plan.target,
        TargetPlan::Spawn {
            voters: 3,
            learners: 0,
            base_port: None,
            ..
        }
    ));
}

#[test]
fn full_command_line_parses() {
    let plan = plan(&[
        "commits",
        "--spawn",
        "--clients",
        "64",
        "--count",
        "20000",
        "--baseline",
        "etcd",
        "--json",
        "/tmp/c64.json",
        "--learners",
        "2",
        "--bootstorm-exe",
        "/opt/bootstorm",
        "--max-seconds",
        "60",
    ])
    .unwrap();
    assert_eq!(plan.clients, 64);
    assert_eq!(
        plan.connections, COMMITS_CONNECTIONS_MAX,
        "one connection per client by default, up to the limit"
    );
    assert_eq!(plan.baseline, Some(BaselinePeer::Etcd));
    assert_eq!(
        plan.json.as_deref(),
        Some(std::path::Path::new("/tmp/c64.json"))
    );
    assert!(matches!(plan.target, TargetPlan::Spawn { learners: 2, .. }));
}

#[test]
fn target_is_exactly_one_of_spawn_or_cluster() {
    assert!(error(&["commits"]).contains("--spawn"));
    assert!(error(&["commits", "--spawn", "--cluster", "c.toml"]).contains("cannot be used"));
    let plan = plan(&["commits", "--cluster", "c.toml"]).unwrap();
    assert_eq!(
        plan.target,
        TargetPlan::Cluster {
            file: "c.toml".into()
        }
    );
}

#[test]
fn zero_clients_count_or_seconds_are_refused() {
    assert!(
        error(&["commits", "--spawn", "--clients", "0"]).contains("--clients must be at least 1")
    );
    assert!(error(&["commits", "--spawn", "--count", "0"]).contains("--count must be at least 1"));
    assert!(error(&["commits", "--spawn", "--max-seconds", "0"]).contains("--max-seconds"));
    assert!(error(&["commits", "--spawn", "--max-seconds", "100000"]).contains("--max-seconds"));
    assert!(error(&["commits", "--spawn", "--clients", "100000"]).contains("limit"));
}

#[test]
fn fewer_commits_than_clients_is_fine() {
    let plan = plan(&["commits", "--spawn", "--clients", "8", "--count", "3"]).unwrap();
    assert_eq!((plan.clients, plan.count), (8, 3));
}

#[test]
fn connections_fit_the_admin_plane() {
    let max = COMMITS_CONNECTIONS_MAX;
    // Many clients share at most the load tester's connection limit by default.
    let clients = (max * ADMIN_BIDI_STREAMS_CONCURRENT_MAX).to_string();
    let plan = plan(&["commits", "--spawn", "--clients", &clients]).unwrap();
    assert_eq!(plan.connections, max);
    // One shared client carries up to its stream limit.
    let streams = ADMIN_BIDI_STREAMS_CONCURRENT_MAX.to_string();
    let one = plan_ok(&[
        "commits",
        "--spawn",
        "--clients",
        &streams,
        "--connections",
        "1",
    ]);
    assert_eq!(one.connections, 1);
    let too_many_streams = (ADMIN_BIDI_STREAMS_CONCURRENT_MAX + 1).to_string();
    assert!(error(&[
        "commits",
        "--spawn",
        "--clients",
        &too_many_streams,
        "--connections",
        "1"
    ])
    .contains("raise --connections"));
    assert!(
        error(&["commits", "--spawn", "--clients", "4", "--connections", "8"]).contains("idle")
    );
    let over = (max + 1).to_string();
    assert!(error(&[
        "commits",
        "--spawn",
        "--clients",
        "512",
        "--connections",
        &over
    ])
    .contains("COMMITS_CONNECTIONS_MAX"));
    assert!(error(&["commits", "--spawn", "--connections", "0"]).contains("at least 1"));
}

fn plan_ok(args: &[&str]) -> CommitsPlan {
    plan(args).unwrap()
}

#[test]
fn spawn_options_are_checked() {
    assert!(error(&["commits", "--spawn", "--voters", "2"]).contains("odd"));
    assert!(error(&[
        "commits",
        "--spawn",
        "--nodes",
        "10",
        "--target-nodes",
        "11"
    ])
    .contains("--nodes"));
    assert!(error(&["commits", "--spawn", "--baseline", "nginx"]).contains("invalid value"));
}

#[test]
fn propagation_parses_with_a_target_and_refuses_without() {
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("bootstorm-loadtest").chain(args.iter().copied()))
    };
    match parse(&["propagation", "--spawn", "--learners", "2", "--count", "5"])
        .unwrap()
        .command
    {
        Command::Propagation(args) => {
            assert_eq!(args.count, 5);
            assert_eq!(args.vcluster, "compute");
            assert!(args.target.plan(0).is_ok());
        }
        other => panic!("parsed as {other:?}"),
    }
    assert!(
        parse(&["propagation", "--count", "5"]).is_err(),
        "--spawn or --cluster is required"
    );
}

#[test]
fn rounds_are_bounded() {
    let max = bootstorm_loadtest::rounds::ROUNDS_MAX;
    assert_eq!(plan_ok(&["commits", "--spawn", "--rounds", "3"]).rounds, 3);
    assert_eq!(
        plan_ok(&["commits", "--spawn", "--rounds", &max.to_string()]).rounds,
        max
    );
    assert!(error(&["commits", "--spawn", "--rounds", "0"]).contains("--rounds"));
    assert!(
        error(&["commits", "--spawn", "--rounds", &(max + 1).to_string()]).contains("--rounds")
    );
}
