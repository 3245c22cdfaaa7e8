//! `larder`: the composition root. Parses the command line, reads the environment once into a
//! map, and hands both to the command that runs.

mod app;
mod cli;
mod error;
mod flight;
mod grpc;
mod grpc_metrics;
#[cfg(test)]
mod grpc_tests;
mod http;
mod net;
mod registry_grpc;
mod registry_rest;
mod service;
mod telemetry;

use std::collections::HashMap;

use clap::Parser;

/// glibc malloc serializes the request path's many small allocations across worker threads;
/// mimalloc keeps them thread-local.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives memory the allocator holds free back to the system: mimalloc purges freed pages only
/// when the thread that freed them allocates again after a delay, so a serving thread that
/// freed large request buffers and then idles would keep them resident (measured: 200 bodies of
/// 64 KiB left 33 MB resident after their connections closed; with this, none). The network
/// layer calls this on a thread that freed large buffers, at most every few seconds, so the
/// forced collection's cost never lands on the lookup path.
pub fn release_free_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and the allocator's own
    // structures; it takes no pointers from us.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// mimalloc's `mi_option_purge_delay` (the 16th option of `mi_option_e` in its v2 header,
/// which the Rust bindings do not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For batch jobs (a retrieval): freed pages stay with the allocator for
/// the process's life instead of going back to the system 10 ms after they are freed. A job
/// frees and reallocates the same large decode buffers for every row group, and giving them
/// back made the kernel zero them again on each reuse (measured on a 1M x 10M retrieval: 16,288
/// page faults against 2,158, the zeroing a quarter of the CPU time). Peak memory is what it
/// was; a job's memory goes back when it exits. Servers keep the default.
fn keep_freed_memory() {
    // SAFETY: sets one of the allocator's options to a documented value (-1: never purge); it
    // takes no pointers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    if args.command.is_batch_job() {
        keep_freed_memory();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LARDER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.as_filter()));
    let env: HashMap<String, String> = std::env::vars().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let telemetry = match runtime.block_on(async { telemetry::init(filter, args.log_format, &env) })
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(args, env));
    runtime.block_on(async { telemetry.shutdown() });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
