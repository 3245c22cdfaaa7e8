//! Every registry store runs the one conformance suite (`larder_registry::conformance`):
//! in-memory, a local file, S3 (the moto server `scripts/test` starts, at
//! `LARDER_S3_ENDPOINT`) and Feast's SQL registry on the local PostgreSQL (127.0.0.1:5432,
//! user postgres, trust auth; one database per test). Plus checks particular to one store.

mod file;
mod memory;
mod s3;
mod sql;
