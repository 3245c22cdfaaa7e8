//! Every online backend runs the one conformance suite, against real servers the tests start:
//! Redis standalone, a 3-master Redis cluster and a Redis sentinel setup, plus SQLite files;
//! and the standalone store's auto-pipelining connection on its own.

mod backends;
mod pipe;
mod pyrepr_oracle;
