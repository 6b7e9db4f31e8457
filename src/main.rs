use std::process::ExitCode;

use support_operator::check::{self, CheckOptions};
use support_operator::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Crd => {
            print!("{}", support_operator::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Check(args) => {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = CheckOptions {
                policy: args.policy,
                snapshots: args.snapshots,
                server_version: args.server_version,
                now: args.now,
                output: args.output,
                fail_on: args.fail_on,
                color: args.color,
            };
            match runtime.block_on(check::run(opts)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    // A file, a field or a value quoted from the input: escaped for the terminal.
                    eprintln!("error: {}", support_operator::text::printable(&e.to_string()));
                    ExitCode::from(2)
                }
            }
        }
        Command::Run(args) => match support_operator::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
