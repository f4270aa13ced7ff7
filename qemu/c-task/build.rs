//! Links each task image with its C objects, which qemu/Makefile compiled with
//! aarch64-linux-gnu-gcc into `C_OBJECTS_DIR`: the program (examples/c/hash_table.c, without
//! and with -DDEBUG) and the runtime's C part (libc/stdio.c).

use std::path::PathBuf;

/// Each binary and its program's object.
const PROGRAMS: [(&str, &str); 2] =
    [("memserver-hash-table-task", "hash_table.o"), ("memserver-hash-table-debug-task", "hash_table_debug.o")];
/// The C runtime's objects, linked into every binary.
const RUNTIME: [&str; 1] = ["stdio.o"];

fn main() {
    println!("cargo:rerun-if-env-changed=C_OBJECTS_DIR");
    let dir = PathBuf::from(std::env::var_os("C_OBJECTS_DIR").unwrap_or_else(|| {
        panic!("C_OBJECTS_DIR is not set: the C objects are compiled by qemu/Makefile (make -C qemu build)")
    }));
    let object = |name: &str| {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.is_file() {
            panic!("{} does not exist: qemu/Makefile compiles it (make -C qemu build)", path.display());
        }
        path.display().to_string()
    };
    for (bin, program) in PROGRAMS {
        println!("cargo:rustc-link-arg-bin={bin}={}", object(program));
        for runtime in RUNTIME {
            println!("cargo:rustc-link-arg-bin={bin}={}", object(runtime));
        }
    }
}
