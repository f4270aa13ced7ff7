//! A program whose heap is the memserver: `MEMSERVER_SOCKET=… MEMSERVER_CLIENT=app global-alloc`.

use memclient::host::GlobalKmalloc;

#[global_allocator]
static ALLOCATOR: GlobalKmalloc = GlobalKmalloc::from_env();

fn main() -> std::process::ExitCode {
    memserver_examples::global_alloc::main(&ALLOCATOR)
}
