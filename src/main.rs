//! The `cxrelay` command: parses the command line and hands each command to
//! its module in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
