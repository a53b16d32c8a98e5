//! Service checks: does the service work, not only is the port open.
//! Plain Rust, no pyo3 (`py/service.rs` converts).
//!
//! - `steps`: send/expect dialogues over a connection;
//! - `starttls`: the plaintext exchange of each STARTTLS preset;
//! - `services`: ready dialogues for common services.

pub mod runner;
pub mod services;
pub mod starttls;
pub mod steps;

pub use runner::{check_one, ServiceResult, ServiceRun, ServiceSpec, Steps};
pub use services::{service_steps, SERVICE_NAMES};
pub use starttls::{negotiate, StartTlsProto};
pub use steps::{run_steps, Captures, Finished, Pattern, Step, StepFailure, TlsSetup};

#[cfg(test)]
mod tests;
