//! The `global-alloc` example (examples/src/bin/global_alloc.rs), built inside this package
//! for its tests: a program whose `#[global_allocator]` is memclient's.

use memclient::host::GlobalKmalloc;

#[global_allocator]
static ALLOCATOR: GlobalKmalloc = GlobalKmalloc::from_env();

fn main() -> std::process::ExitCode {
    memserver_examples::global_alloc::main(&ALLOCATOR)
}
