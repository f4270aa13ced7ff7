//! The `memserver` binary, built inside this package for its tests.

fn main() -> std::process::ExitCode {
    memserver_host::main()
}
