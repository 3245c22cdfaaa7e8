//! Every online backend runs the one conformance suite, against real servers the tests start:
//! Redis standalone, a 3-master Redis cluster and a Redis sentinel setup, plus SQLite files.

mod backends;
mod pyrepr_oracle;
