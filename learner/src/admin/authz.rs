//! Who may do what on the admin plane: one table ([`PERMISSIONS`]) of operation → roles
//! allowed, and one pure function ([`authorize`]) that the server calls for every request
//! before it does anything else.
//!
//! The roles (the certificate's subject OU, checked in the handshake; `net::Plane::client_roles`
//! admits admins, replicas and monitors here and refuses node certificates before any request):
//! - **admin**: everything, as the author of what it writes;
//! - **replica**: exactly what a replica needs from the leader — add *itself* as a learner
//!   (joining), read `Status`, ask for an overlay rebuild; nothing else;
//! - **monitor**: read-only — `Status` and `Log`; never a write, a membership change or a
//!   rebuild. (`/metrics` is plain HTTP and needs no certificate.)
//!
//! Where secrets will be filtered: `Log` answers carry each entry's delta, file contents
//! included. Files cannot be marked secret yet (`secret = true` is another issue); when they
//! can, `server::log_page`, which builds every page, must take the caller's role and replace
//! the contents of secret files with a marker for every role but admin, so a monitor reads
//! who changed which file when, never the secret itself.
//!
//! Invariants: every operation has exactly one row (a test checks); a refusal names the role,
//! the certificate's CN and the operation, and is answered `Unauthorized` before the request
//! touches Raft or the state machine.

use config::JournalCommand;
use net::certs::Role;
use proto::AdminRequest;

/// An operation as authorization sees it: a request kind, with `Propose` told apart by the
/// command it carries (setting a policy is not registering a node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Commit,
    Rollback,
    SetPolicy,
    RegisterNode,
    RecordOperation,
    /// Revoke a certificate (`RevokeCertificate`): every plane refuses it from then on.
    RevokeCertificate,
    /// `SetOverlay`/`ExpireTtl`: derived by the leader; the server refuses them even to admins.
    ProposeDerived,
    Status,
    Log,
    AddLearner,
    Promote,
    Remove,
    RebuildOverlay,
}

impl Operation {
    /// Every operation, for the table test.
    pub const ALL: [Operation; 13] = [
        Operation::Commit,
        Operation::Rollback,
        Operation::SetPolicy,
        Operation::RegisterNode,
        Operation::RecordOperation,
        Operation::RevokeCertificate,
        Operation::ProposeDerived,
        Operation::Status,
        Operation::Log,
        Operation::AddLearner,
        Operation::Promote,
        Operation::Remove,
        Operation::RebuildOverlay,
    ];

    /// The operation `request` asks for.
    pub fn of(request: &AdminRequest) -> Operation {
        match request {
            AdminRequest::Commit { .. } => Operation::Commit,
            AdminRequest::Rollback { .. } => Operation::Rollback,
            AdminRequest::Propose(command) => match command {
                JournalCommand::AppendEntry(_) => Operation::Commit,
                JournalCommand::SetPolicy { .. } => Operation::SetPolicy,
                JournalCommand::UpdateNodeState { .. } => Operation::RegisterNode,
                JournalCommand::RecordOperation(_) => Operation::RecordOperation,
                JournalCommand::RevokeCertificate { .. } => Operation::RevokeCertificate,
                JournalCommand::SetOverlay { .. } | JournalCommand::ExpireTtl { .. } => {
                    Operation::ProposeDerived
                }
            },
            AdminRequest::Status | AdminRequest::StatusV2 => Operation::Status,
            AdminRequest::Log { .. } => Operation::Log,
            AdminRequest::AddLearner { .. } => Operation::AddLearner,
            AdminRequest::Promote { .. } => Operation::Promote,
            AdminRequest::Remove { .. } => Operation::Remove,
            AdminRequest::RebuildOverlay { .. } => Operation::RebuildOverlay,
        }
    }

    /// The operation as a verb phrase, for refusals ("may not {}").
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Commit => "commit",
            Operation::Rollback => "roll back",
            Operation::SetPolicy => "set a vCluster policy",
            Operation::RegisterNode => "register a node",
            Operation::RecordOperation => "record an operation",
            Operation::RevokeCertificate => "revoke a certificate",
            Operation::ProposeDerived => "propose a leader-derived command",
            Operation::Status => "read status",
            Operation::Log => "read the log",
            Operation::AddLearner => "add a learner",
            Operation::Promote => "promote a learner (change membership)",
            Operation::Remove => "remove a member (change membership)",
            Operation::RebuildOverlay => "ask for an overlay rebuild",
        }
    }
}

/// A role an operation is granted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Every certificate of the role.
    Role(Role),
    /// A certificate of the role, only for a request naming the certificate's own CN (a
    /// replica adding itself as a learner).
    Itself(Role),
}

const ADMIN: Grant = Grant::Role(Role::Admin);
const REPLICA: Grant = Grant::Role(Role::Replica);
const MONITOR: Grant = Grant::Role(Role::Monitor);

/// Operation → roles allowed: the whole authorization policy of the admin plane.
pub const PERMISSIONS: &[(Operation, &[Grant])] = &[
    (Operation::Commit, &[ADMIN]),
    (Operation::Rollback, &[ADMIN]),
    (Operation::SetPolicy, &[ADMIN]),
    (Operation::RegisterNode, &[ADMIN]),
    (Operation::RecordOperation, &[ADMIN]),
    (Operation::RevokeCertificate, &[ADMIN]),
    // Let through so that the server's own refusal (`authored`) explains why.
    (Operation::ProposeDerived, &[ADMIN]),
    (Operation::Status, &[ADMIN, REPLICA, MONITOR]),
    (Operation::Log, &[ADMIN, MONITOR]),
    (
        Operation::AddLearner,
        &[ADMIN, Grant::Itself(Role::Replica)],
    ),
    (Operation::Promote, &[ADMIN]),
    (Operation::Remove, &[ADMIN]),
    (Operation::RebuildOverlay, &[ADMIN, REPLICA]),
];

/// The grants of `operation` (empty for an operation missing from the table: refused).
pub fn grants(operation: Operation) -> &'static [Grant] {
    PERMISSIONS
        .iter()
        .find(|(op, _)| *op == operation)
        .map_or(&[], |(_, grants)| grants)
}

/// Whether a certificate of `role` named `name` may make `request`; the refusal message
/// otherwise, naming the role, the CN and the operation.
pub fn authorize(role: Role, name: &str, request: &AdminRequest) -> Result<(), String> {
    let operation = Operation::of(request);
    let target = match request {
        AdminRequest::AddLearner { name, .. } => Some(name.as_str()),
        _ => None,
    };
    let granted = grants(operation).iter().any(|grant| match grant {
        Grant::Role(allowed) => *allowed == role,
        Grant::Itself(allowed) => *allowed == role && target == Some(name),
    });
    if granted {
        return Ok(());
    }
    let who = format!("a {role} certificate (CN={name})");
    let op = operation.as_str();
    Err(match (role, target) {
        (Role::Replica, Some(target)) if operation == Operation::AddLearner => format!(
            "{who} may not add a learner named {target:?}: a replica may only add itself; use an admin certificate"
        ),
        (Role::Replica, _) => format!(
            "{who} may not {op}: replicas may only add themselves as learners, read status and ask for overlay rebuilds; use an admin certificate"
        ),
        (Role::Monitor, _) => {
            format!("{who} may not {op}: monitors read status and log only")
        }
        (Role::Node, _) => format!(
            "{who} may not {op}: node certificates are for the boot plane only"
        ),
        (Role::Admin, _) => format!("{who} may not {op}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::{NewEntry, Scope, StateDelta};

    /// One request per operation.
    fn request(operation: Operation, learner: &str) -> AdminRequest {
        let entry = NewEntry::commit(Scope::Global, "x", 0, StateDelta::default());
        match operation {
            Operation::Commit => AdminRequest::Commit { entry },
            Operation::Rollback => AdminRequest::Rollback {
                scope: Scope::Global,
                to_seq: 1,
                parent: None,
            },
            Operation::SetPolicy => AdminRequest::Propose(JournalCommand::SetPolicy {
                vcluster_id: "compute".into(),
                policy: Default::default(),
                author: String::new(),
                timestamp_ms: 0,
            }),
            Operation::RegisterNode => AdminRequest::Propose(JournalCommand::UpdateNodeState {
                node_id: "node-0001".into(),
                state: config::NodeState {
                    vcluster: "compute".into(),
                    status: config::NodeStatus::Committed,
                },
                author: String::new(),
                timestamp_ms: 0,
            }),
            Operation::RecordOperation => {
                AdminRequest::Propose(JournalCommand::RecordOperation(config::AdminOperation {
                    timestamp_ms: 0,
                    kind: config::OperationKind::Exec,
                    node: "node-0001".into(),
                    author: String::new(),
                    detail: String::new(),
                    exit_code: None,
                }))
            }
            Operation::RevokeCertificate => {
                AdminRequest::Propose(JournalCommand::RevokeCertificate {
                    certificate: config::RevokedCertificate::Serial("a1b".into()),
                    reason: String::new(),
                    author: String::new(),
                    timestamp_ms: 0,
                })
            }
            Operation::ProposeDerived => AdminRequest::Propose(JournalCommand::ExpireTtl {
                now_ms: 0,
                author: String::new(),
            }),
            Operation::Status => AdminRequest::Status,
            Operation::Log => AdminRequest::Log {
                scope: None,
                since: 0,
                limit: 0,
            },
            Operation::AddLearner => AdminRequest::AddLearner {
                node_id: 9,
                name: learner.into(),
                raft_addr: String::new(),
                boot_addr: String::new(),
                admin_addr: String::new(),
            },
            Operation::Promote => AdminRequest::Promote { node_id: 9 },
            Operation::Remove => AdminRequest::Remove { node_id: 9 },
            Operation::RebuildOverlay => AdminRequest::RebuildOverlay {
                vcluster: "compute".into(),
                seq: 1,
            },
        }
    }

    #[test]
    fn every_operation_has_exactly_one_row_and_is_classified_back() {
        for operation in Operation::ALL {
            let rows = PERMISSIONS
                .iter()
                .filter(|(op, _)| *op == operation)
                .count();
            assert_eq!(rows, 1, "{operation:?}");
            assert_eq!(Operation::of(&request(operation, "r")), operation);
        }
    }

    /// The policy as a matrix: operation, then admin, replica (as itself), replica (as
    /// another), monitor, node.
    #[test]
    fn the_table_grants_admins_everything_replicas_joining_and_monitors_reading() {
        use Operation::*;
        #[rustfmt::skip]
        let expected: [(Operation, [bool; 5]); 13] = [
            //                 admin  repl.self repl.other monitor node
            (Commit,          [true,  false,    false,     false,  false]),
            (Rollback,        [true,  false,    false,     false,  false]),
            (SetPolicy,       [true,  false,    false,     false,  false]),
            (RegisterNode,    [true,  false,    false,     false,  false]),
            (RecordOperation, [true,  false,    false,     false,  false]),
            (RevokeCertificate, [true, false,   false,     false,  false]),
            (ProposeDerived,  [true,  false,    false,     false,  false]),
            (Status,          [true,  true,     true,      true,   false]),
            (Log,             [true,  false,    false,     true,   false]),
            (AddLearner,      [true,  true,     false,     false,  false]),
            (Promote,         [true,  false,    false,     false,  false]),
            (Remove,          [true,  false,    false,     false,  false]),
            (RebuildOverlay,  [true,  true,     true,      false,  false]),
        ];
        for (operation, [admin, replica_self, replica_other, monitor, node]) in expected {
            let as_self = request(operation, "learner-9");
            let as_other = request(operation, "learner-7");
            let cases = [
                (Role::Admin, "alice", &as_self, admin),
                (Role::Replica, "learner-9", &as_self, replica_self),
                (Role::Replica, "learner-9", &as_other, replica_other),
                (Role::Monitor, "grafana", &as_self, monitor),
                (Role::Node, "node-0001", &as_self, node),
            ];
            for (role, name, request, allowed) in cases {
                let answer = authorize(role, name, request);
                assert_eq!(
                    answer.is_ok(),
                    allowed,
                    "{operation:?} by {role} {name}: {answer:?}"
                );
                if let Err(message) = answer {
                    assert!(
                        message.contains(&format!("a {role} certificate (CN={name})")),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_role_the_cn_and_the_operation() {
        let commit = request(Operation::Commit, "x");
        assert_eq!(
            authorize(Role::Monitor, "grafana", &commit).unwrap_err(),
            "a monitor certificate (CN=grafana) may not commit: monitors read status and log only"
        );
        let membership = request(Operation::Promote, "x");
        let message = authorize(Role::Monitor, "grafana", &membership).unwrap_err();
        assert!(
            message.contains("may not promote a learner (change membership)"),
            "{message}"
        );
        let message = authorize(
            Role::Replica,
            "learner-9",
            &request(Operation::AddLearner, "learner-7"),
        )
        .unwrap_err();
        assert!(message.contains("may only add itself"), "{message}");
        let message = authorize(Role::Replica, "learner-9", &commit).unwrap_err();
        assert!(
            message.contains("a replica certificate (CN=learner-9) may not commit"),
            "{message}"
        );
        let message = authorize(Role::Node, "node-0001", &AdminRequest::Status).unwrap_err();
        assert!(message.contains("boot plane only"), "{message}");
    }
}
