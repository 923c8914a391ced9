//! Compiles every `.proto` under the workspace's `proto/` folder with `protox` (a pure
//! Rust protobuf compiler, so no system `protoc` is needed) and generates prost
//! messages plus tonic clients and servers for all of them in one pass.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// `CustomerService` → `customer_service`, as tonic names a server's module.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// An `impl MessageLimits` for the generated server of every service of the contracts,
/// so that the platform kit sets the message limits of any server a service adds.
fn message_limits(fds: &prost_types::FileDescriptorSet) -> String {
    let mut code = String::new();
    for file in &fds.file {
        let module = file.package().replace('.', "::");
        for service in &file.service {
            let name = service.name();
            let server = format!("crate::{module}::{}_server", snake_case(name));
            code.push_str(&format!(
                "impl<T: {server}::{name}> crate::MessageLimits for {server}::{name}Server<T> {{\n\
                 \x20   fn with_message_limits(self, max_bytes: usize) -> Self {{\n\
                 \x20       self.max_decoding_message_size(max_bytes).max_encoding_message_size(max_bytes)\n\
                 \x20   }}\n\
                 }}\n"
            ));
        }
    }
    code
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    let mut files = Vec::new();
    proto_files(&root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("crm_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    std::fs::write(out_dir.join("message_limits.rs"), message_limits(&fds))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .include_file("mod.rs")
        .compile_fds_with_config(fds, {
            // `prost::Name` gives every message its fully qualified name, which the
            // outbox uses as the CloudEvents type.
            let mut config = tonic_prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}
