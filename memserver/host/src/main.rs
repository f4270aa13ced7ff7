//! `memserver`: the Linux host runner of the memory server (the logic is the `memserver_host`
//! library; `memserver --help` lists the options).

fn main() -> std::process::ExitCode {
    memserver_host::main()
}
