//! Limits of the journal domain, in one place.
//!
//! Every limit is enforced by [`crate::apply`] (or the delta parser) and tested at its edge.
//! Relations between limits are checked at compile time below.

/// Largest state delta (file contents + paths + settings, see `StateDelta::size_bytes`) a single
/// entry may carry. A whole vCluster overlay is ~0.5–1 MiB before compression, so one entry may
/// carry all of it; anything larger is a mistake (an image, a log) that does not belong here.
pub const ENTRY_DELTA_SIZE_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Largest folded node-scoped config (all of one node's manual changes together). Phase 2 of a
/// boot is this node's delta; the budget for a typical node is under 1 KiB, this is the hard cap
/// that keeps phase 2 a single small message.
pub const NODE_CONFIG_SIZE_MAX_BYTES: usize = 16 * 1024;

/// Largest folded vCluster config (global + vCluster scoped deltas), uncompressed. Bounds the
/// overlay an agent must decompress and hold in memory.
pub const VCLUSTER_CONFIG_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Longest file path in a delta, in bytes (Linux PATH_MAX).
pub const PATH_LEN_MAX_BYTES: usize = 4096;

/// Longest identifier (vCluster, node id, setting key, owner), in bytes. Authors are
/// certificate identities and may be longer: they are bounded by `TEXT_LEN_MAX_BYTES`.
pub const NAME_LEN_MAX_BYTES: usize = 128;

/// Longest setting value, emergency reason or free text, in bytes.
pub const TEXT_LEN_MAX_BYTES: usize = 4096;

/// Most files + removals + settings one delta may name.
pub const DELTA_ITEMS_MAX: usize = 4096;

/// Largest stored overlay (compressed bytes) accepted through `SetOverlay`.
pub const OVERLAY_SIZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Largest file mode: permission bits plus setuid/setgid/sticky.
pub const FILE_MODE_MAX: u32 = 0o7777;

/// The mode that marks a [`crate::FileSpec`] as a symlink (`S_IFLNK | 0777`, as `st_mode` has
/// it): its content is the link target. Above [`FILE_MODE_MAX`], so no file mode collides.
pub const SYMLINK_MODE: u32 = 0o120777;

/// Longest symlink target, in bytes (Linux PATH_MAX).
pub const SYMLINK_TARGET_LEN_MAX_BYTES: usize = 4096;

/// Most revocations the journal holds. Every plane checks a client certificate against the set
/// on each handshake (a B-tree lookup) and every replica keeps it in memory (~100 bytes each),
/// so it is bounded; revocations are rare (a leaked key, a departed admin), and at this many
/// the CA should be replaced instead, which revokes everything it signed at once.
pub const REVOKED_CERTIFICATES_MAX: usize = 16 * 1024;

/// Longest certificate serial in canonical hex (RFC 5280: at most 20 octets).
pub const CERTIFICATE_SERIAL_HEX_LEN_MAX: usize = 40;

const _: () = assert!(NODE_CONFIG_SIZE_MAX_BYTES < ENTRY_DELTA_SIZE_MAX_BYTES);
const _: () = assert!(ENTRY_DELTA_SIZE_MAX_BYTES <= VCLUSTER_CONFIG_SIZE_MAX_BYTES);
const _: () = assert!(OVERLAY_SIZE_MAX_BYTES <= VCLUSTER_CONFIG_SIZE_MAX_BYTES);
const _: () = assert!(NAME_LEN_MAX_BYTES < PATH_LEN_MAX_BYTES);
const _: () = assert!(SYMLINK_MODE > FILE_MODE_MAX);
