//! OAuth 2.0 token client for the Interactive Brokers (IBKR) Web API.
//!
//! (Crate docs with a complete example are written with the facade.)

pub mod assertion;
pub mod clock;
pub mod error;

pub use assertion::ClientAssertion;
pub use clock::{Clock, SystemClock};
pub use error::Error;

/// The generated models of IBKR's token endpoint, re-exported so that users never name the
/// generated crate.
pub mod models {
    pub use ibkr_oauth_generated::models::*;
}
