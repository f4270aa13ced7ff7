//! The `memctl` binary, built inside this package for its tests.

fn main() -> std::process::ExitCode {
    memctl::main()
}
