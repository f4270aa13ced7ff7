//! `memclient-header OUT`: writes the generated `memclient.h` to OUT.
//! `memclient-header --check`: fails if the committed header differs from the generated one.

use std::process::ExitCode;

fn main() -> ExitCode {
    let header = match memclient_header::generate() {
        Ok(header) => header,
        Err(e) => {
            eprintln!("memclient-header: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--check" => {
            let committed = memclient_header::committed_header();
            if std::fs::read_to_string(&committed).ok().as_deref() == Some(header.as_str()) {
                ExitCode::SUCCESS
            } else {
                eprintln!("memclient-header: {} is out of date: run `make c-header`", committed.display());
                ExitCode::FAILURE
            }
        }
        [out] => match std::fs::write(out, header) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("memclient-header: {out}: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: memclient-header OUT | --check");
            ExitCode::from(2)
        }
    }
}
