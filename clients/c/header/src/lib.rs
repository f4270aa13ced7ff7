//! memclient-header: generates `memclient.h` from the `memclient-c` crate with cbindgen.
//!
//! # Design
//! The header is made from the Rust source of the C API (`clients/c/src`) and
//! `clients/c/cbindgen.toml`, which also carries the Linux macros cbindgen cannot derive
//! (`KMEM_CACHE`, `ZERO_SIZE_PTR`). The generated file is committed at
//! `clients/c/include/memclient.h`; `make c-api` writes a fresh copy next to the library, and
//! this crate's test fails when the committed one differs from what the source gives
//! (`make c-header` rewrites it).

use std::path::{Path, PathBuf};

/// The `memclient-c` crate directory.
pub fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed header.
pub fn committed_header() -> PathBuf {
    crate_dir().join("include").join("memclient.h")
}

/// The header, generated now from the source (an error says why not).
pub fn generate() -> Result<String, String> {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))?;
    let bindings =
        cbindgen::Builder::new().with_crate(&dir).with_config(config).generate().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).map_err(|e| e.to_string())
}
