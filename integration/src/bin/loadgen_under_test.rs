//! The `loadgen` binary, built inside this package for its tests.

fn main() -> std::process::ExitCode {
    loadgen::main()
}
