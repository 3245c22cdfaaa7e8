//! End-to-end tests of the `larder` binary. The oracle tests run the real Feast SDK
//! (`feast[redis]==0.67.0`) on generated repos and compare its answers with Larder's; they
//! need what `scripts/test` provides (see `support::Oracle`).

mod cli_errors;
mod deploy;
mod historical;
mod limits;
mod materialize_faults;
mod openapi;
mod oracle_logging;
mod oracle_materialize;
mod oracle_ondemand;
mod oracle_registry;
mod oracle_serving;
mod oracle_versions;
mod serve_e2e;
mod support;
mod traces;
