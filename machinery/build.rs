//! Compiles the vendored Kubernetes `.proto` files under `vendor/proto/` into a binary
//! `FileDescriptorSet` (`$OUT_DIR/k8s_descriptors.bin`) with protox, a pure-Rust protobuf
//! compiler, so no `protoc` is needed. `src/protobuf.rs` embeds it and decodes
//! protobuf request bodies by reflection over these descriptors.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("vendor")
        .join("proto");
    println!("cargo:rerun-if-changed=vendor/proto");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut compiler = protox::Compiler::new([&root]).unwrap_or_else(|e| panic!("protox: {e}"));
    compiler.include_source_info(false).include_imports(true);
    compiler.open_files(&files).unwrap_or_else(|e| panic!("protox: {e}"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("k8s_descriptors.bin");
    std::fs::write(&out, compiler.encode_file_descriptor_set())
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Every `.proto` file below `dir`, as a path relative to `root` (its import name).
fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
    }
}
