//! Argument validation of `bootstorm-loadtest boots` (pure): the defaults make a bounded
//! 100k-node closed-loop cold storm; closed and open loop exclude each other; counts, rates and
//! node ids are bounded; and the placement rules (node id reuse, rack-local replica first,
//! the mixed-mode split) hold.

use bootstorm_loadtest::boots::{
    failover_orders, holds_overlay, node_index, BootMode, BootsBaselinePeer, BootsPlan, Load,
    BOOTS_DEFAULT, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, OPEN_LOOP_IN_FLIGHT_MAX,
};
use bootstorm_loadtest::cli::{Cli, Command, TargetPlan, MAX_SECONDS_DEFAULT};
use clap::Parser as _;
use conf::Role;

fn plan(args: &[&str]) -> anyhow::Result<BootsPlan> {
    let argv = std::iter::once("bootstorm-loadtest").chain(args.iter().copied());
    match Cli::try_parse_from(argv)?.command {
        Command::Boots(args) => args.plan(),
        _ => anyhow::bail!("not a boots command"),
    }
}

fn error(args: &[&str]) -> String {
    format!(
        "{:#}",
        plan(args).expect_err("these arguments must be refused")
    )
}

#[test]
fn defaults_are_a_bounded_cold_storm() {
    let plan = plan(&["boots", "--spawn"]).unwrap();
    assert_eq!(plan.boots, BOOTS_DEFAULT);
    assert_eq!(plan.boots, 100_000);
    assert_eq!(
        plan.load,
        Load::Closed {
            concurrency: CONCURRENCY_DEFAULT
        }
    );
    assert_eq!(CONCURRENCY_DEFAULT, 64);
    assert_eq!(plan.mode, BootMode::Cold);
    assert_eq!(plan.max_seconds, MAX_SECONDS_DEFAULT);
    assert_eq!(plan.max_seconds, 300);
    assert_eq!(plan.baseline, None);
    assert_eq!(plan.target_nodes, 1000, "--nodes of the spawned cluster");
    // A site boots from learners: a spawned storm has two, as `bootstorm dev` starts.
    assert!(matches!(
        plan.target,
        TargetPlan::Spawn {
            voters: 3,
            learners: 2,
            ..
        }
    ));
}

#[test]
fn full_command_line_parses() {
    let plan = plan(&[
        "boots",
        "--spawn",
        "--learners",
        "2",
        "--nodes",
        "50",
        "--boots",
        "20000",
        "--concurrency",
        "16",
        "--mode",
        "mixed",
        "--baseline",
        "nginx",
        "--json",
        "/tmp/b.json",
        "--max-seconds",
        "60",
    ])
    .unwrap();
    assert_eq!(plan.boots, 20_000);
    assert_eq!(plan.load, Load::Closed { concurrency: 16 });
    assert_eq!(plan.mode, BootMode::Mixed);
    assert_eq!(plan.baseline, Some(BootsBaselinePeer::Nginx));
    assert_eq!(plan.baseline_concurrency(), 16);
    assert_eq!(plan.max_seconds, 60);
    assert_eq!(plan.target_nodes, 50);
    assert!(matches!(
        plan.target,
        TargetPlan::Spawn {
            learners: 2,
            nodes: 50,
            ..
        }
    ));
}

#[test]
fn rate_is_an_open_loop_with_bounded_in_flight() {
    let plan = plan(&["boots", "--spawn", "--rate", "500", "--mode", "reboot"]).unwrap();
    assert_eq!(
        plan.load,
        Load::Open {
            rate_per_s: 500,
            in_flight_max: OPEN_LOOP_IN_FLIGHT_MAX
        }
    );
    assert_eq!(plan.mode, BootMode::Reboot);
    assert!(plan.boot_check, "agents use boot checks unless told not to");
    assert_eq!(plan.baseline_concurrency(), CONCURRENCY_DEFAULT);
    let without = self::plan(&["boots", "--spawn", "--mode", "reboot", "--no-boot-check"]);
    assert!(!without.unwrap().boot_check);
    assert!(
        !plan.verify_every_boot,
        "repeated overlays are byte-compared by default"
    );
    let every = self::plan(&["boots", "--spawn", "--verify-every-boot"]).unwrap();
    assert!(every.verify_every_boot);
}

#[test]
fn rounds_repeat_whole_storms_but_plot_one() {
    assert_eq!(plan(&["boots", "--spawn"]).unwrap().rounds, 1);
    assert_eq!(
        plan(&["boots", "--spawn", "--rounds", "4"]).unwrap().rounds,
        4
    );
    assert!(error(&["boots", "--spawn", "--rounds", "0"]).contains("--rounds"));
    assert!(error(&["boots", "--spawn", "--rounds", "21"]).contains("--rounds"));
    assert!(error(&["boots", "--spawn", "--rounds", "2", "--plot", "x.svg"]).contains("--plot"));
    assert!(plan(&["boots", "--spawn", "--rounds", "1", "--plot", "x.svg"]).is_ok());
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    assert!(
        plan(&["boots", "--spawn", "--concurrency", "8", "--rate", "100"]).is_err(),
        "closed and open loop exclude each other"
    );
    assert!(
        plan(&["boots", "--boots", "10"]).is_err(),
        "a target is required"
    );
    assert!(error(&["boots", "--spawn", "--boots", "0"]).contains("--boots"));
    assert!(error(&["boots", "--spawn", "--concurrency", "0"]).contains("--concurrency"));
    let too_many = (CONCURRENCY_MAX + 1).to_string();
    assert!(error(&["boots", "--spawn", "--concurrency", &too_many]).contains("limit"));
    assert!(error(&["boots", "--spawn", "--rate", "0"]).contains("--rate"));
    assert!(error(&["boots", "--spawn", "--max-seconds", "0"]).contains("--max-seconds"));
    assert!(
        error(&["boots", "--spawn", "--nodes", "50", "--target-nodes", "51"]).contains("--nodes")
    );
    assert!(plan(&["boots", "--spawn", "--mode", "warm"]).is_err());
    assert!(plan(&["boots", "--spawn", "--baseline", "etcd"]).is_err());
}

#[test]
fn node_ids_are_reused_cyclically_beyond_the_registered_nodes() {
    assert_eq!(node_index(0, 50), 1);
    assert_eq!(node_index(49, 50), 50);
    assert_eq!(node_index(50, 50), 1);
    assert_eq!(node_index(299, 50), 50);
}

#[test]
fn each_node_boots_from_its_rack_learner_first_then_fails_over() {
    use Role::{Learner, Voter};
    // dev cluster order: voter-1..3, learner-1..2.
    let orders = failover_orders(&[Voter, Voter, Voter, Learner, Learner]);
    assert_eq!(orders, vec![vec![3, 4, 0, 1, 2], vec![4, 3, 0, 1, 2]]);
    // Without learners every replica is some rack's first choice.
    let orders = failover_orders(&[Voter, Voter, Voter]);
    assert_eq!(orders, vec![vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1]]);
}

#[test]
fn mixed_mode_holds_an_overlay_about_half_the_time_on_both_vclusters() {
    assert!((0..1000).all(|i| !holds_overlay(BootMode::Cold, i)));
    assert!((0..1000).all(|i| holds_overlay(BootMode::Reboot, i)));
    for parity in [0, 1] {
        // Odd and even nodes boot into different demo vClusters: both get reboots.
        let held = (0..10_000u64)
            .filter(|i| i % 2 == parity && holds_overlay(BootMode::Mixed, *i))
            .count();
        assert!((2_300..2_700).contains(&held), "{held} of 5000");
    }
}

#[test]
fn scenario_flags_parse_and_are_checked_against_the_target() {
    let plan = plan(&[
        "boots",
        "--spawn",
        "--learners",
        "2",
        "--commit-every-ms",
        "200",
        "--kill-learner-at",
        "1.5",
        "--kill-leader-at",
        "3",
        "--add-learner-at",
        "4",
        "--plot",
        "storm.svg",
    ])
    .unwrap();
    assert_eq!(plan.scenarios.commit_every_ms, Some(200));
    assert_eq!(plan.scenarios.kill_learner_at_s, Some(1.5));
    assert_eq!(plan.scenarios.kill_leader_at_s, Some(3.0));
    assert_eq!(plan.scenarios.add_learner_at_s, Some(4.0));
    assert_eq!(
        plan.plot.as_deref(),
        Some(std::path::Path::new("storm.svg"))
    );
    // Commits work against a running cluster; kills only on one this process started.
    assert!(plan_ok(&[
        "boots",
        "--cluster",
        "c.toml",
        "--commit-every-ms",
        "200"
    ]));
    assert!(error(&["boots", "--cluster", "c.toml", "--kill-leader-at", "1"]).contains("--spawn"));
    assert!(error(&[
        "boots",
        "--spawn",
        "--learners",
        "0",
        "--kill-learner-at",
        "1"
    ])
    .contains("--learners"));
    assert!(error(&[
        "boots",
        "--spawn",
        "--learners",
        "2",
        "--max-seconds",
        "10",
        "--add-learner-at",
        "10"
    ])
    .contains("--max-seconds"));
    assert!(error(&["boots", "--spawn", "--commit-every-ms", "0"]).contains("--commit-every-ms"));
}

fn plan_ok(args: &[&str]) -> bool {
    plan(args).is_ok()
}
