//! `memctl` (the logic is the `memctl` library crate).

fn main() -> std::process::ExitCode {
    memctl::main()
}
