//! `loadgen` (the logic is the `loadgen` library crate).

fn main() -> std::process::ExitCode {
    loadgen::main()
}
