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
    /// Render a chart locally exactly as `helm template` does.
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

/// Entry point of the binary: maps errors to exit code 1 with the full cause chain on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
