//! Restart and damage tests of the raft storage: what survives a drop + reopen, what recovery
//! repairs (a torn tail), what it refuses (a corrupt record in the middle, naming the file),
//! and how snapshots are written, rotated, verified and fallen back from. All on real fsync'd
//! files in temp dirs.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use config::demo::{demo_commands, DemoSpec};
use config::{JournalCommand, JournalState};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use raftstore::limits::SEGMENT_ZERO_AHEAD_BYTES;
use raftstore::{LogStore, LogStoreOptions, RaftStorage, StorageOptions, StoreError};
use tempfile::TempDir;

/// Longest a test waits for an fsync acknowledgement before failing.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn command_entry(term: u64, index: u64, command: JournalCommand) -> Entry<raftstore::TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(command.into()),
    }
}

fn membership_entry(term: u64, index: u64) -> Entry<raftstore::TypeConfig> {
    let nodes: std::collections::BTreeMap<u64, raftstore::ReplicaNode> =
        [(1u64, raftstore::ReplicaNode::default())]
            .into_iter()
            .collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![[1u64].into()], nodes)),
    }
}

/// The demo journal as log entries: a membership entry at index 1, then one per command.
fn demo_entries(nodes: u32) -> Vec<Entry<raftstore::TypeConfig>> {
    let spec = DemoSpec {
        nodes,
        ..DemoSpec::default()
    };
    let mut entries = vec![membership_entry(1, 1)];
    for (i, command) in demo_commands(&spec).into_iter().enumerate() {
        entries.push(command_entry(1, i as u64 + 2, command));
    }
    entries
}

fn direct_state(entries: &[Entry<raftstore::TypeConfig>]) -> JournalState {
    let mut state = JournalState::new();
    for entry in entries {
        if let EntryPayload::Normal(proposal) = &entry.payload {
            for command in &proposal.commands {
                let _ = config::apply(&mut state, command.clone());
            }
        }
    }
    state
}

fn open(dir: &Path) -> RaftStorage {
    raftstore::open(dir, StorageOptions::default()).expect("open raft storage")
}

/// Opens with the default options where opening must fail; `why` says why it must.
fn open_err(dir: &Path, why: &str) -> StoreError {
    match raftstore::open(dir, StorageOptions::default()) {
        Ok(_) => panic!("{why}"),
        Err(e) => e,
    }
}

fn open_small_segments(dir: &Path) -> RaftStorage {
    let options = StorageOptions {
        log: LogStoreOptions {
            segment_size_max_bytes: 4096,
            ..LogStoreOptions::default()
        },
        ..StorageOptions::default()
    };
    raftstore::open(dir, options).expect("open raft storage")
}

/// Appends and waits for the fsync acknowledgement.
fn append_durable(log: &LogStore, entries: Vec<Entry<raftstore::TypeConfig>>) {
    let (tx, rx) = mpsc::channel();
    log.append_then(entries, move |result| {
        let _ = tx.send(result);
    })
    .expect("append");
    rx.recv_timeout(ACK_TIMEOUT)
        .expect("fsync acknowledged in time")
        .expect("fsync succeeded");
}

/// Entries as comparable text (openraft's `Entry` has no `PartialEq`).
fn fingerprint(entries: &[Entry<raftstore::TypeConfig>]) -> Vec<String> {
    entries.iter().map(|e| format!("{e:?}")).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("raft/log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

/// Where the records of `segment` end: walks `[len u32][blake3 32 B][payload]` from the 16-byte
/// header to the first zero length (the zeros written ahead) or the end of the file.
fn records_end(segment: &Path) -> u64 {
    let bytes = fs::read(segment).unwrap();
    let mut offset = 16usize;
    while offset + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        offset += 36 + len;
    }
    offset as u64
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("raft/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn log_vote_and_committed_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries[..10].to_vec());
        append_durable(&storage.log, entries[10..].to_vec());
        storage
            .log
            .save_vote_sync(&Vote::new_committed(3, 2))
            .unwrap();
        storage.log.save_committed_sync(Some(log_id(1, 7))).unwrap();
    }
    let storage = open(dir.path());
    let read = storage.log.read_entries(..).unwrap();
    assert_eq!(fingerprint(&read), fingerprint(&entries));
    assert_eq!(
        storage.log.read_vote_sync().unwrap(),
        Some(Vote::new_committed(3, 2))
    );
    assert_eq!(
        storage.log.read_committed_sync().unwrap(),
        Some(log_id(1, 7))
    );
    assert_eq!(storage.recovery.log.torn_tail, None);
    // Replay stops at the committed id: entries 8.. are in the log but not applied.
    assert_eq!(storage.recovery.replayed_entries, 7);
    assert_eq!(storage.reader.read().last_applied, Some(log_id(1, 7)));
}

#[test]
fn truncate_and_purge_across_segments_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let last = entries.len() as u64;
    {
        let storage = open_small_segments(dir.path());
        for entry in &entries {
            append_durable(&storage.log, vec![entry.clone()]);
        }
        assert!(segments(dir.path()).len() > 3, "small segments rotate");
        storage.log.truncate_sync(log_id(1, last - 3)).unwrap();
        // openraft purges only what a snapshot covers.
        apply_and_snapshot(&storage, &entries[..5]);
        storage.log.purge_sync(log_id(1, 5)).unwrap();
        // Overwrite the truncated suffix with entries of a newer term.
        let newer: Vec<_> = entries[(last - 4) as usize..]
            .iter()
            .map(|e| Entry {
                log_id: log_id(2, e.log_id.index),
                payload: e.payload.clone(),
            })
            .collect();
        append_durable(&storage.log, newer);
    }
    let storage = open_small_segments(dir.path());
    let read = storage.log.read_entries(..).unwrap();
    assert_eq!(read.first().unwrap().log_id, log_id(1, 6));
    assert_eq!(read.last().unwrap().log_id, log_id(2, last));
    assert_eq!(read[read.len() - 5].log_id, log_id(1, last - 4));
    assert_eq!(read.len() as u64, last - 5);
    let state = storage.log.log_state();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    let first_segment = segments(dir.path())[0].clone();
    let first_index: u64 = first_segment
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first_index <= 6,
        "segments holding only purged entries are deleted"
    );
}

#[test]
fn a_committed_id_ahead_of_the_durable_log_is_saved_as_its_newest_durable_entry() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(5);
    let last = entries.last().unwrap().log_id;
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
        // A leader committed three more entries on its followers' copies while its own
        // append of them had not reached this log yet.
        storage
            .log
            .save_committed_later(Some(log_id(1, last.index + 3)))
            .unwrap();
    }
    let storage = open(dir.path());
    assert_eq!(storage.log.read_committed_sync().unwrap(), Some(last));
    // Behind the durable log it is saved as given.
    storage
        .log
        .save_committed_later(Some(log_id(1, last.index - 2)))
        .unwrap();
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(
        storage.log.read_committed_sync().unwrap(),
        Some(log_id(1, last.index - 2))
    );
}

#[test]
fn a_torn_tail_record_is_cut_off_and_the_log_goes_on() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries[..6].to_vec());
    }
    // Simulate a crash in the middle of writing entry 6: cut its record short.
    let segment = segments(dir.path()).pop().unwrap();
    let len = records_end(&segment);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let storage = open(dir.path());
    let torn = storage
        .recovery
        .log
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(torn.path, segment);
    assert_eq!(storage.log.read_entries(..).unwrap().len(), 5);
    append_durable(&storage.log, entries[5..].to_vec());
    drop(storage);

    let storage = open(dir.path());
    assert_eq!(storage.recovery.log.torn_tail, None);
    let read = storage.log.read_entries(..).unwrap();
    assert_eq!(fingerprint(&read), fingerprint(&entries));
}

#[test]
fn zeros_after_the_last_record_are_its_end_not_a_torn_write() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(10);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries[..5].to_vec());
    }
    // The active segment is zero-filled ahead of its records (the file does not grow with
    // every append), and recovery reads the zeros as the end: nothing torn, nothing cut.
    let segment = segments(dir.path()).pop().unwrap();
    let end = records_end(&segment);
    let len = fs::metadata(&segment).unwrap().len();
    assert_eq!(len, end + SEGMENT_ZERO_AHEAD_BYTES);
    let storage = open(dir.path());
    assert_eq!(storage.recovery.log.torn_tail, None);
    assert_eq!(storage.log.read_entries(..).unwrap().len(), 5);
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        len,
        "the zeros are kept"
    );
    append_durable(&storage.log, entries[5..].to_vec());
    drop(storage);

    let storage = open(dir.path());
    assert_eq!(storage.recovery.log.torn_tail, None);
    let read = storage.log.read_entries(..).unwrap();
    assert_eq!(fingerprint(&read), fingerprint(&entries));
    // The appends overwrote zeros; the syncer tops the zeros up only once fewer than half
    // are left.
    let end_now = records_end(&segment);
    let expected_len = if len - end_now >= SEGMENT_ZERO_AHEAD_BYTES / 2 {
        len
    } else {
        end_now + SEGMENT_ZERO_AHEAD_BYTES
    };
    assert_eq!(fs::metadata(&segment).unwrap().len(), expected_len);
}

#[test]
fn the_zeros_ahead_are_topped_up_and_never_cover_a_record() {
    let dir = TempDir::new().unwrap();
    let storage = open(dir.path());
    let mut all = Vec::new();
    // Enough entries to need several top-ups, one append (one fsync round) each.
    let mut index = 0u64;
    while all.len() < 40 || records_end(&segments(dir.path())[0]) < 3 * SEGMENT_ZERO_AHEAD_BYTES {
        let mut batch = demo_entries(20);
        for entry in &mut batch {
            index += 1;
            entry.log_id = log_id(1, index);
        }
        append_durable(&storage.log, batch.clone());
        all.extend(batch);
        let segment = &segments(dir.path())[0];
        let (end, len) = (records_end(segment), fs::metadata(segment).unwrap().len());
        assert!(len >= end, "the file ends at or after its records");
        assert!(len <= end + SEGMENT_ZERO_AHEAD_BYTES, "{len} vs {end}");
    }
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(storage.recovery.log.torn_tail, None);
    assert_eq!(
        fingerprint(&storage.log.read_entries(..).unwrap()),
        fingerprint(&all)
    );
}

#[test]
fn without_zeros_ahead_the_segment_ends_at_its_last_record() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(5);
    let options = StorageOptions {
        log: LogStoreOptions {
            zero_ahead_bytes: 0,
            ..LogStoreOptions::default()
        },
        ..StorageOptions::default()
    };
    {
        let storage = raftstore::open(dir.path(), options.clone()).unwrap();
        append_durable(&storage.log, entries.clone());
    }
    let segment = segments(dir.path()).pop().unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), records_end(&segment));
    let storage = raftstore::open(dir.path(), options).unwrap();
    assert_eq!(storage.recovery.log.torn_tail, None);
    assert_eq!(storage.log.read_entries(..).unwrap().len(), entries.len());
}

#[test]
fn bytes_after_the_zeros_ahead_are_an_error_not_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    {
        let storage = open(dir.path());
        append_durable(&storage.log, demo_entries(5));
    }
    // Something non-zero far past the last record: not a write of ours (we only ever write
    // records at the end of the records), so damage to report, never to cut silently.
    let segment = segments(dir.path()).pop().unwrap();
    let end = records_end(&segment);
    let len = fs::metadata(&segment).unwrap().len();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&[0x5a], len - 1).unwrap();
    drop(file);
    let err = open_err(dir.path(), "stray bytes past the records must not open");
    match &err {
        StoreError::CorruptRecord {
            path, offset_bytes, ..
        } => {
            assert_eq!(path, &segment, "{err}");
            assert_eq!(*offset_bytes, end, "reported where the records end: {err}");
        }
        other => panic!("expected a corrupt record, got: {other}"),
    }
}

#[test]
fn a_corrupt_record_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new().unwrap();
    {
        let storage = open(dir.path());
        append_durable(&storage.log, demo_entries(20));
    }
    let segment = segments(dir.path()).pop().unwrap();
    // First record starts after the 16-byte header; flip a payload byte (after its 36-byte
    // record header).
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 16 + 36 + 3).unwrap();
    byte[0] ^= 0x40;
    file.write_all_at(&byte, 16 + 36 + 3).unwrap();
    drop(file);

    let err = open_err(dir.path(), "a corrupt record in the middle must not open");
    assert!(
        matches!(&err, StoreError::CorruptRecord { path, offset_bytes: 16, .. } if *path == segment),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(message.contains("byte 16"), "{message}");
}

/// Applies `entries` through the state machine and builds a snapshot file.
fn apply_and_snapshot(storage: &RaftStorage, entries: &[Entry<raftstore::TypeConfig>]) {
    storage.state_machine.apply_entries(entries.to_vec());
    storage
        .state_machine
        .build_snapshot_sync()
        .expect("build snapshot");
}

#[test]
fn a_snapshot_is_a_checksummed_file_and_restores_the_state() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
        apply_and_snapshot(&storage, &entries);
    }
    let last = entries.last().unwrap().log_id;
    let name = format!("snap-{}-{}.bin", last.leader_id.term, last.index);
    assert_eq!(snapshot_files(dir.path()), vec![name.clone()]);
    let bytes = fs::read(dir.path().join("raft/snapshots").join(&name)).unwrap();
    assert_eq!(&bytes[..8], b"BSSNAP02");

    // No committed id was saved, so the state comes from the snapshot alone.
    let storage = open(dir.path());
    assert_eq!(storage.recovery.snapshot_last_log_id, Some(last));
    assert_eq!(storage.reader.read().journal, direct_state(&entries));
    assert_eq!(
        storage.reader.read().last_membership.log_id(),
        &Some(log_id(1, 1))
    );
}

#[test]
fn a_corrupt_newest_snapshot_is_reported_and_the_older_one_used_with_log_replay() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let half = entries.len() / 2;
    let last = entries.last().unwrap().log_id;
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
        apply_and_snapshot(&storage, &entries[..half]);
        apply_and_snapshot(&storage, &entries[half..]);
        storage.log.save_committed_sync(Some(last)).unwrap();
    }
    let newest = dir
        .path()
        .join("raft/snapshots")
        .join(format!("snap-1-{}.bin", last.index));
    // Damage the body: the header still parses, the body checksum does not match.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&newest)
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.write_all_at(&[0xff, 0x00, 0xff], len - 10).unwrap();
    drop(file);

    let storage = open(dir.path());
    let reports = &storage.recovery.corrupt_snapshots;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].path, newest);
    assert!(
        reports[0].reason.contains("checksum"),
        "{}",
        reports[0].reason
    );
    assert!(reports[0].quarantined_as.as_ref().unwrap().exists());
    assert_eq!(
        storage.recovery.snapshot_last_log_id,
        Some(entries[half - 1].log_id)
    );
    assert_eq!(
        storage.recovery.replayed_entries,
        (entries.len() - half) as u64
    );
    assert_eq!(storage.reader.read().journal, direct_state(&entries));
    assert_eq!(storage.reader.read().last_applied, Some(last));
}

#[test]
fn a_truncated_snapshot_is_detected_and_skipped() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let last = entries.last().unwrap().log_id;
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
        apply_and_snapshot(&storage, &entries);
        storage.log.save_committed_sync(Some(last)).unwrap();
    }
    let path = dir
        .path()
        .join("raft/snapshots")
        .join(format!("snap-1-{}.bin", last.index));
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    // No older snapshot: the whole committed log is replayed instead.
    let storage = open(dir.path());
    assert_eq!(storage.recovery.corrupt_snapshots.len(), 1);
    assert!(storage.recovery.corrupt_snapshots[0]
        .reason
        .contains("truncated"));
    assert_eq!(storage.recovery.snapshot_last_log_id, None);
    assert_eq!(storage.reader.read().journal, direct_state(&entries));
}

#[test]
fn only_the_three_newest_snapshots_are_kept() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let storage = open(dir.path());
    for chunk in entries.chunks(5) {
        apply_and_snapshot(&storage, chunk);
    }
    assert!(entries.chunks(5).count() > 3);
    let want: Vec<String> = {
        let mut names: Vec<String> = entries
            .chunks(5)
            .map(|c| format!("snap-1-{}.bin", c.last().unwrap().log_id.index))
            .collect();
        names = names.split_off(names.len() - 3);
        names.sort();
        names
    };
    assert_eq!(snapshot_files(dir.path()), want);
}

#[test]
fn snapshot_plus_log_replay_equals_applying_every_command() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(150);
    let last = entries.last().unwrap().log_id;
    {
        let storage = open_small_segments(dir.path());
        append_durable(&storage.log, entries.clone());
        apply_and_snapshot(&storage, &entries[..entries.len() / 3]);
        storage.log.save_committed_sync(Some(last)).unwrap();
    }
    let storage = open_small_segments(dir.path());
    let direct = direct_state(&entries);
    assert_eq!(storage.reader.read().journal, direct);
    assert_eq!(*storage.reader.applied_seq().borrow(), direct.last_seq);
    assert_eq!(*storage.reader.applied_index().borrow(), Some(last.index));
}

#[test]
fn purge_beyond_the_newest_valid_snapshot_refuses_to_open() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(5);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
        storage.log.purge_sync(log_id(1, 3)).unwrap();
    }
    let err = open_err(dir.path(), "no snapshot covers the purged entries");
    assert!(matches!(err, StoreError::SnapshotBehindLog { .. }), "{err}");
}

#[test]
fn pipelined_appends_share_fsyncs_and_all_are_acknowledged() {
    let dir = TempDir::new().unwrap();
    let storage = open(dir.path());
    let entries = demo_entries(100);
    let (tx, rx) = mpsc::channel();
    // Like openraft: the next append is issued before the previous one is durable.
    for entry in &entries {
        let tx = tx.clone();
        storage
            .log
            .append_then(vec![entry.clone()], move |result| {
                let _ = tx.send(result);
            })
            .unwrap();
    }
    for _ in &entries {
        rx.recv_timeout(ACK_TIMEOUT).unwrap().unwrap();
    }
    let stats = storage.log.sync_stats();
    println!(
        "{} appends acknowledged with {} fsync rounds",
        stats.appends_acked, stats.fsync_rounds
    );
    assert_eq!(stats.appends_acked, entries.len() as u64);
    assert!(stats.fsync_rounds <= stats.appends_acked);
}

#[test]
fn a_batch_with_a_gap_is_an_error_and_leaves_the_log_as_it_was() {
    let dir = TempDir::new().unwrap();
    let storage = open(dir.path());
    let entries = demo_entries(4);
    append_durable(&storage.log, entries[..2].to_vec());
    // Index 4 is missing between 3 and 5: refused, not a panic of the raft core.
    let gapped = vec![entries[2].clone(), entries[4].clone()];
    let err = storage
        .log
        .append_then(gapped, |_| panic!("a refused batch is never acknowledged"))
        .expect_err("a gap inside a batch is refused");
    assert!(
        matches!(
            err,
            StoreError::NotContiguous {
                got: 5,
                last: Some(3),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        storage.log.log_state().last_log_id.map(|id| id.index),
        Some(entries[1].log_id.index)
    );
    // The log goes on from where it was.
    append_durable(&storage.log, entries[2..].to_vec());
    assert_eq!(
        storage.log.log_state().last_log_id.map(|id| id.index),
        entries.last().map(|e| e.log_id.index)
    );
}

#[tokio::test]
async fn readers_wait_for_a_seq_without_polling() {
    let dir = TempDir::new().unwrap();
    let storage = open(dir.path());
    let entries = demo_entries(3);
    let reader = storage.reader.clone();
    assert_eq!(
        reader.wait_for_seq(1, Duration::from_millis(10)).await,
        Err(0),
        "nothing applied yet: times out with the current seq"
    );
    let waiter = tokio::spawn(async move { reader.wait_for_seq(2, ACK_TIMEOUT).await });
    storage.state_machine.apply_entries(entries.clone());
    let reached = waiter.await.unwrap().expect("seq reached");
    assert!(reached >= 2);
}

#[tokio::test]
async fn an_installed_snapshot_is_a_file_that_survives_restart() {
    let leader_dir = TempDir::new().unwrap();
    let follower_dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let leader = open(leader_dir.path());
    leader.state_machine.apply_entries(entries.clone());
    let snapshot = leader.state_machine.build_snapshot_sync().unwrap();
    {
        let mut follower = open(follower_dir.path());
        let mut received = follower
            .state_machine
            .begin_receiving_snapshot()
            .await
            .unwrap();
        *received = *snapshot.snapshot;
        follower
            .state_machine
            .install_snapshot(&snapshot.meta, received)
            .await
            .unwrap();
        assert_eq!(follower.reader.read().journal, direct_state(&entries));
    }
    let follower = tokio::task::spawn_blocking({
        let path = follower_dir.path().to_owned();
        move || open(&path)
    })
    .await
    .unwrap();
    assert_eq!(follower.reader.read().journal, direct_state(&entries));
    assert_eq!(
        follower.recovery.snapshot_last_log_id,
        Some(entries.last().unwrap().log_id)
    );
}

#[tokio::test]
async fn a_damaged_snapshot_from_the_leader_is_refused() {
    let leader_dir = TempDir::new().unwrap();
    let follower_dir = TempDir::new().unwrap();
    let leader = open(leader_dir.path());
    leader.state_machine.apply_entries(demo_entries(5));
    let snapshot = leader.state_machine.build_snapshot_sync().unwrap();
    let mut bytes = snapshot.snapshot.into_inner();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let mut follower = open(follower_dir.path());
    let result = follower
        .state_machine
        .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(bytes)))
        .await;
    assert!(result.is_err());
    assert!(snapshot_files(follower_dir.path()).is_empty());
    assert_eq!(follower.reader.read().last_applied, None);
}

#[test]
fn a_damaged_length_field_in_the_middle_is_not_mistaken_for_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    {
        let storage = open(dir.path());
        append_durable(&storage.log, demo_entries(20));
    }
    let segment = segments(dir.path()).pop().unwrap();
    // The first record's length field claims far more than any record may hold.
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&u32::MAX.to_le_bytes(), 16).unwrap();
    drop(file);
    let err = open_err(dir.path(), "a damaged length in the middle must not open");
    assert!(
        matches!(&err, StoreError::CorruptRecord { path, .. } if *path == segment),
        "{err}"
    );
}

#[test]
fn a_garbled_last_record_is_a_torn_write() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(5);
    {
        let storage = open(dir.path());
        append_durable(&storage.log, entries.clone());
    }
    // The last record is complete in length but its payload pages did not all land (zeros
    // ahead follow it).
    let segment = segments(dir.path()).pop().unwrap();
    let len = records_end(&segment);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut tail = [0u8; 3];
    file.read_exact_at(&mut tail, len - 3).unwrap();
    file.write_all_at(&tail.map(|b| !b), len - 3).unwrap();
    drop(file);
    let storage = open(dir.path());
    assert!(storage.recovery.log.torn_tail.is_some());
    let read = storage.log.read_entries(..).unwrap();
    assert_eq!(read.len(), entries.len() - 1);
}

#[test]
fn replication_batches_are_cut_by_encoded_size_and_never_empty() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(20);
    let sizes: Vec<usize> = entries
        .iter()
        .map(|e| postcard::to_stdvec(e).unwrap().len())
        .collect();
    let storage = open(dir.path());
    append_durable(&storage.log, entries.clone());
    let (first, end) = (1u64, entries.len() as u64 + 1);
    // No limit in reach: the whole range.
    assert_eq!(storage.log.batch_end(first, end, usize::MAX), end);
    // A limit below one entry: still that one entry (a batch is never empty).
    assert_eq!(storage.log.batch_end(first, end, 1), first + 1);
    assert_eq!(storage.log.batch_end(5, end, 0), 6);
    // Exactly three entries' worth: three; one byte less: two.
    let three: usize = sizes[..3].iter().sum();
    assert_eq!(storage.log.batch_end(first, end, three), first + 3);
    assert_eq!(storage.log.batch_end(first, end, three - 1), first + 2);
    // The end of the asked range bounds it too.
    assert_eq!(storage.log.batch_end(first, 3, usize::MAX), 3);

    // A request carrying a cut batch fits the raft frame: entries encode in the request exactly
    // as in their records, plus an envelope far below the slack.
    let cap = three;
    let batch = storage
        .log
        .read_entries(first..storage.log.batch_end(first, end, cap))
        .unwrap();
    let request = openraft::raft::AppendEntriesRequest::<raftstore::TypeConfig> {
        vote: Vote::new_committed(u64::MAX, u64::MAX),
        prev_log_id: Some(log_id(u64::MAX, u64::MAX)),
        leader_commit: Some(log_id(u64::MAX, u64::MAX)),
        entries: batch,
    };
    let encoded = postcard::to_stdvec(&request).unwrap().len();
    assert!(
        encoded <= cap + proto::limits::RAFT_ENTRY_ENCODING_SLACK_BYTES,
        "{encoded} bytes for {cap} bytes of entries"
    );
}

/// `LogFaults::fsync_fail_after`: the armed round fails like a real fsync failure (the
/// append's acknowledgement is an error, later appends are refused, naming the injection), and
/// after a reopen without the fault only the entries fsynced before it are trusted as durable.
#[test]
fn an_injected_fsync_failure_fails_the_round_and_every_later_write() {
    let dir = TempDir::new().unwrap();
    let entries = demo_entries(3);
    let options = StorageOptions {
        log: LogStoreOptions {
            faults: raftstore::LogFaults {
                fsync_fail_after: Some(1),
                append_panic_after: None,
            },
            ..LogStoreOptions::default()
        },
        ..StorageOptions::default()
    };
    {
        let storage = raftstore::open(dir.path(), options).unwrap();
        append_durable(&storage.log, entries[..1].to_vec());
        let (tx, rx) = mpsc::channel();
        storage
            .log
            .append_then(entries[1..2].to_vec(), move |result| {
                let _ = tx.send(result);
            })
            .expect("the write to the page cache still works");
        let acked = rx.recv_timeout(ACK_TIMEOUT).expect("answered in time");
        let error = acked.expect_err("the injected round fails").to_string();
        assert!(error.contains("injected fsync failure"), "{error}");
        let refused = storage
            .log
            .append_then(entries[2..3].to_vec(), |_| {})
            .expect_err("a failed log refuses further writes");
        assert!(matches!(refused, StoreError::Failed { .. }), "{refused}");
        assert!(refused.to_string().contains("injected fsync failure"));
    }
    let reopened = open(dir.path());
    append_durable(&reopened.log, Vec::new());
}
