//! The admin plane client library (skeleton).

/// Why an admin request failed on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not implemented yet")]
    Unimplemented,
}

/// A connection to the cluster's admin plane.
pub struct AdminClient {}
