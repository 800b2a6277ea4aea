//! `keelson tags IMAGE`: the tags a registry offers, newest first under a policy, and the tag
//! the policy would pick from the current one.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::policy::{Policy, PolicyOptions, Selection};
use crate::registry::{ImageRef, RegistryArgs, RegistryClient};

/// Output format of `keelson tags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TagsOutput {
    Table,
    Json,
}

/// Arguments of `keelson tags`.
#[derive(Debug, Clone, clap::Args)]
pub struct TagsArgs {
    /// The image, as in a pod spec (`nginx`, `ghcr.io/org/app:1.2.3`).
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Keel policy: all, major, minor, patch, force, never, glob:PATTERN or regexp:PATTERN.
    #[arg(long, default_value = "all", value_name = "P")]
    pub policy: String,
    /// The tag the image runs now (default: the tag in IMAGE, else latest).
    #[arg(long, value_name = "TAG")]
    pub current: Option<String>,
    /// Keel's matchPreRelease: a pre-release only follows the same pre-release channel.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub match_pre_release: bool,
    /// Keel's matchTag (force only): stay on the current tag, act on digest changes.
    #[arg(long)]
    pub match_tag: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TagsOutput::Table)]
    pub output: TagsOutput,
}

#[derive(Debug, serde::Serialize)]
struct TagsReport<'a> {
    image: String,
    current: &'a str,
    policy: String,
    tags: Vec<&'a str>,
    selected: Option<&'a str>,
}

/// Runs `keelson tags`.
pub async fn run(args: TagsArgs) -> anyhow::Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let policy = Policy::parse_with(
        &args.policy,
        PolicyOptions {
            match_tag: args.match_tag,
            match_pre_release: args.match_pre_release,
        },
    )?;
    let current = args
        .current
        .clone()
        .or_else(|| image.tag.clone())
        .unwrap_or_else(|| "latest".to_string());
    let config = args.registry.config()?;
    let client = RegistryClient::new(config)?;
    let tags = client
        .list_tags(&image)
        .await
        .with_context(|| format!("cannot list the tags of {}", image.repository()))?;
    let selection = policy.select(&current, &tags);
    let report = TagsReport {
        image: image.repository(),
        current: &current,
        policy: policy.to_string(),
        tags: policy.order(&tags),
        selected: selection.tag(),
    };
    let mut stdout = std::io::stdout().lock();
    match args.output {
        TagsOutput::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
        TagsOutput::Table => write_table(&mut stdout, &report, &selection)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(
    out: &mut impl Write,
    report: &TagsReport<'_>,
    selection: &Selection,
) -> std::io::Result<()> {
    let decision = match selection {
        Selection::Update(tag) => tag.clone(),
        Selection::WatchDigest(tag) => format!("{tag} (same tag; updates when its digest changes)"),
        Selection::Hold(reason) => format!("<none> ({reason})"),
    };
    writeln!(out, "IMAGE:     {}", report.image)?;
    writeln!(out, "CURRENT:   {}", report.current)?;
    writeln!(out, "POLICY:    {}", report.policy)?;
    writeln!(out, "SELECTED:  {decision}")?;
    writeln!(out)?;
    if report.tags.is_empty() {
        writeln!(out, "No tags the policy can rank.")?;
        return Ok(());
    }
    let width = report
        .tags
        .iter()
        .map(|t| t.len())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(out, "{:<width$}   NOTE", "TAG")?;
    for tag in &report.tags {
        let note = if Some(*tag) == report.selected && *tag != report.current {
            "selected"
        } else if *tag == report.current {
            "current"
        } else {
            ""
        };
        writeln!(out, "{:<width$}   {note}", tag)?;
    }
    Ok(())
}
