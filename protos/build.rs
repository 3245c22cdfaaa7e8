//! Compiles the Feast-compatible `.proto` files with protox (no system `protoc` needed) and
//! generates prost messages and tonic services. The encoded `FileDescriptorSet` is kept in
//! `OUT_DIR` so the crate can offer the proto3 JSON mapping through prost-reflect.

use std::{io::Result, path::PathBuf};

use prost::Message;

fn main() -> Result<()> {
    let root = PathBuf::from("proto");
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    // New files too (a directory's time changes when a file is added).
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root]).map_err(std::io::Error::other)?;
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("feast_descriptor.bin"), fds.encode_to_vec())?;

    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_transport(false)
        .btree_map(".")
        .include_file("feast_protos.rs")
        .compile_fds_with_config(fds, config)
}

fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
