use std::process::ExitCode;

use support_operator::calendar_cmd;
use support_operator::check::fleet::{self, FleetOptions};
use support_operator::check::{self, CheckOptions};
use support_operator::cli::{CalendarCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Crd => {
            support_operator::text::to_stdout(&support_operator::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Calendar(command) => {
            let text = match &command {
                CalendarCommand::Import(a) => {
                    calendar_cmd::import(a.format, &a.file, a.platform, a.policy_name.as_deref())
                }
                CalendarCommand::Show(a) => calendar_cmd::show(a.platform, a.policy.as_deref()),
            };
            match text {
                Ok(text) => {
                    support_operator::text::to_stdout(&text);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Check(args) if args.is_fleet() => {
            let Some(runtime) = runtime() else { return ExitCode::from(2) };
            let opts = FleetOptions {
                contexts: args.contexts,
                all_contexts: args.all_contexts,
                policy: args.policy,
                now: args.now,
                output: args.output,
                fail_on: args.fail_on,
                color: args.color,
                concurrency: usize::from(args.concurrency),
                cluster_timeout: std::time::Duration::from_secs(args.cluster_timeout_seconds),
            };
            match runtime.block_on(fleet::run(opts)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Check(args) => {
            let Some(runtime) = runtime() else { return ExitCode::from(2) };
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

/// The runtime of `check` (one thread: reading clusters is I/O), or `None` after saying why.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}
