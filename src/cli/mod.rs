//! The `keelson` command line: parses arguments first, then builds clients, then runs one command.

pub mod list;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod approvals;
pub mod run;
pub mod suggest;
pub mod tags;
pub mod update;
pub mod workloads;

use crate::cluster::ClusterArgs;
use crate::logging::{self, LogFormat};

pub mod template;
mod template_argv;

/// keelson keeps Helm releases on the newest container images their `keel:` block allows.
#[derive(Debug, Parser)]
#[command(name = "keelson", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version of keelson.
    Version,
    /// List releases with their keel policy and tracked images (like `helm list`).
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// List an image's tags newest first under a policy, and the tag the policy would pick.
    Tags(tags::TagsArgs),
    /// Show what keelson would change (the plan per tracked image); writes nothing.
    Check(update::CheckArgs),
    /// Print a `keel:` block for a release's containers, matched to the values producing them.
    Suggest(suggest::SuggestArgs),
    /// Plan and write new Helm revisions for releases with newer allowed images.
    Reconcile(update::ReconcileArgs),
    /// List Deployments, StatefulSets, DaemonSets and CronJobs tracked by keel.sh labels.
    Workloads(workloads::WorkloadsArgs),
    #[command(about = TEMPLATE_ABOUT)]
    Template(Box<template::TemplateArgs>),
    /// Run the controller: watch releases, poll registries, take webhooks, write revisions.
    Run(Box<run::RunArgs>),
    /// List approval requests of releases whose keel block asks for approvals.
    Approvals(approvals::ListArgs),
    /// Approve a pending update (each voter counts once).
    Approve(approvals::VoteArgs),
    /// Reject a pending update (one rejection ends it).
    Reject(approvals::VoteArgs),
}

const TEMPLATE_ABOUT: &str = "Render a chart locally exactly as `helm template` does.";

/// `keelson template`'s own parser: the full command line builds the arguments of every
/// subcommand (clap does so before it looks at any argument), which cost `template`, a
/// command measured on its start-up time, about 10% of rendering a small chart.
fn template_only_command() -> clap::Command {
    use clap::Args;
    // `#[command(version)]` on `Cli` is this same version.
    let top = clap::Command::new("keelson")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true);
    // The derive names the struct's doc as `about`; the subcommand's is the variant's.
    let template = template::TemplateArgs::augment_args(clap::Command::new("template"))
        .about(TEMPLATE_ABOUT)
        .long_about(None);
    GlobalArgs::augment_args(top).subcommand(template)
}

/// Parses a `keelson template …` command line: its plain forms without clap
/// ([`template_argv`]), the rest with [`template_only_command`]; `None` when
/// the first argument is not `template` (a global flag first takes the full parser).
fn parse_template_command_line() -> Option<Cli> {
    use clap::FromArgMatches;
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new("template")) {
        return None;
    }
    let argv: Option<Vec<String>> = std::env::args_os()
        .map(|word| word.into_string().ok())
        .collect();
    if let Some((global, args)) = argv.as_deref().and_then(template_argv::read) {
        return Some(Cli {
            global,
            command: Command::Template(Box::new(args)),
        });
    }
    let matches = template_only_command().get_matches();
    let global = GlobalArgs::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let (_, template_matches) = matches.subcommand()?;
    let args =
        template::TemplateArgs::from_arg_matches(template_matches).unwrap_or_else(|err| err.exit());
    Some(Cli {
        global,
        command: Command::Template(Box::new(args)),
    })
}

/// Entry point of the binary: maps errors to exit code 1 with the full cause chain on stderr.
pub fn main() -> ExitCode {
    let cli = parse_template_command_line().unwrap_or_else(Cli::parse);
    logging::init(cli.global.verbose, cli.global.log_format);
    // `template` is local, synchronous work: starting the async runtime's worker threads and
    // the TLS provider would only add to its start-up time.
    if let Command::Template(args) = &cli.command {
        return exit_code(template::run(args));
    }
    crate::cluster::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    exit_code(runtime.block_on(run(cli)))
}

fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The cause chain on one line, like anyhow's `{:#}`, except that an apiserver's answer is
/// given as its message and code (`secrets is forbidden: … (403 Forbidden)`): kube's own
/// display of it repeats the message and adds a debug dump of the whole Status.
fn error_chain(err: &anyhow::Error) -> String {
    crate::cluster::error_chain(err.as_ref())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("keelson {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::List(args) => list::run(args, &cli.global.cluster).await,
        Command::Tags(args) => tags::run(args).await,
        Command::Check(args) => update::check(args, &cli.global.cluster).await,
        Command::Suggest(args) => suggest::run(args, &cli.global.cluster).await,
        Command::Reconcile(args) => update::reconcile(args, &cli.global.cluster).await,
        Command::Workloads(args) => workloads::run(args, &cli.global.cluster).await,
        Command::Template(args) => template::run(&args),
        Command::Run(args) => run::run(*args, &cli.global.cluster).await,
        Command::Approvals(args) => approvals::list(args, &cli.global.cluster).await,
        Command::Approve(args) => approvals::vote(args, &cli.global.cluster, true).await,
        Command::Reject(args) => approvals::vote(args, &cli.global.cluster, false).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

#[cfg(test)]
mod error_tests {
    use super::error_chain;

    #[test]
    fn apiserver_answers_print_as_message_and_code() {
        let status = kube::core::Status::failure("secrets is forbidden: User \"x\"", "Forbidden")
            .with_code(403);
        let err = anyhow::Error::new(kube::Error::Api(status.boxed()))
            .context("cannot list Secrets in namespace \"a\"")
            .context("cannot list releases (secret driver)");
        assert_eq!(
            error_chain(&err),
            "cannot list releases (secret driver): cannot list Secrets in namespace \"a\": \
             secrets is forbidden: User \"x\" (403 Forbidden)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }
}

#[cfg(test)]
mod template_parser_tests {
    use clap::CommandFactory;

    use super::*;

    /// The help and the errors of `keelson template` read the same from either parser.
    #[test]
    fn template_only_parser_matches_the_full_one() {
        let mut full = Cli::command();
        full.build();
        let Some(full_template) = full.find_subcommand_mut("template") else {
            panic!("the full command line has `template`")
        };
        let full_help = full_template.render_long_help().to_string();
        let mut fast = template_only_command();
        fast.build();
        let Some(fast_template) = fast.find_subcommand_mut("template") else {
            panic!("the fast command line has `template`")
        };
        assert_eq!(fast_template.render_long_help().to_string(), full_help);
        for argv in [
            vec!["keelson", "template", "--bogus"],
            vec!["keelson", "template", "a", "b", "c"],
            vec!["keelson", "template", "--version"],
            vec!["keelson", "template", "-n"],
        ] {
            let full_error = Cli::try_parse_from(&argv).err().map(|e| e.to_string());
            let fast_error = template_only_command()
                .try_get_matches_from(&argv)
                .err()
                .map(|e| e.to_string());
            assert_eq!(fast_error, full_error, "{argv:?}");
        }
        let argv = [
            "keelson", "template", "-v", "rel", "./chart", "-n", "x", "--helm4",
        ];
        let Ok(full_cli) = Cli::try_parse_from(argv) else {
            panic!("full parse")
        };
        let Ok(matches) = template_only_command().try_get_matches_from(argv) else {
            panic!("fast parse")
        };
        use clap::FromArgMatches;
        let global = GlobalArgs::from_arg_matches(&matches).map(|g| g.verbose);
        assert_eq!(global.ok(), Some(full_cli.global.verbose));
        let Command::Template(full_args) = full_cli.command else {
            panic!("template")
        };
        let Some((_, sub)) = matches.subcommand() else {
            panic!("subcommand")
        };
        let fast_args = template::TemplateArgs::from_arg_matches(sub).map(|a| format!("{a:?}"));
        assert_eq!(fast_args.ok(), Some(format!("{full_args:?}")));
    }
}
