//! `keelson list`: the releases Helm knows, like `helm list`, plus each one's keel policy and
//! tracked images (or why it is not tracked).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cluster::ClusterArgs;
use crate::keel::{self, KeelBlock};
use crate::storage::{
    Driver, DriverKind, ReleaseRecords, Status, StoredRelease, decode_releases_map,
};
use gocompat::time::{GoTime, Zone};

/// How `keelson list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Flags of `keelson list`, named as `helm list` names them.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Namespace scope (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// List releases across all namespaces (wins over --namespace, as in helm).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Where Helm keeps release records (like HELM_DRIVER).
    #[arg(long, value_enum, env = "HELM_DRIVER", ignore_case = true, default_value_t = DriverKind::Secret)]
    pub driver: DriverKind,
    /// Show all releases without any status filter applied.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show deployed releases (the default together with --failed).
    #[arg(long)]
    pub deployed: bool,
    /// Show failed releases.
    #[arg(long)]
    pub failed: bool,
    /// Show pending releases.
    #[arg(long)]
    pub pending: bool,
    /// Show superseded releases.
    #[arg(long)]
    pub superseded: bool,
    /// Show uninstalled releases (kept with `helm uninstall --keep-history`).
    #[arg(long)]
    pub uninstalled: bool,
    /// Show releases that are being uninstalled.
    #[arg(long)]
    pub uninstalling: bool,
    /// A regular expression; only releases whose name matches are listed.
    #[arg(short = 'f', long)]
    pub filter: Option<String>,
    /// Label selector on the release records (e.g. -l team=web), ANDed with owner=helm.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Sort by release date instead of name.
    #[arg(short = 'd', long)]
    pub date: bool,
    /// Reverse the sort order.
    #[arg(short = 'r', long)]
    pub reverse: bool,
    /// Maximum number of releases to print (0: no limit).
    #[arg(short = 'm', long, default_value_t = 256)]
    pub max: usize,
    /// Index of the first release to print.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Print release names only.
    #[arg(short = 'q', long)]
    pub short: bool,
    /// Don't print headers in the table format.
    #[arg(long)]
    pub no_headers: bool,
    /// List workloads with keel.sh labels instead of releases (as `keelson workloads`).
    #[arg(long)]
    pub workloads: bool,
    /// Format UPDATED with a Go time layout, e.g. "2006-01-02 15:04:05Z0700".
    #[arg(long)]
    pub time_format: Option<String>,
}

/// One row of `keelson list -o json|yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedRelease {
    pub name: String,
    pub namespace: String,
    pub revision: i64,
    pub updated: String,
    pub status: String,
    pub chart: String,
    pub app_version: String,
    /// The keel block with the current image values, or null when not tracked.
    pub keel: Option<ListedKeel>,
    /// Why the release is not tracked, or null.
    pub error: Option<String>,
    #[serde(skip)]
    last_deployed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedKeel {
    pub policy: String,
    pub trigger: String,
    pub poll_schedule: String,
    pub images: Vec<ListedImage>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedImage {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The policy in force for this image (the block's, or its own override).
    pub policy: String,
}

/// Why a release is not tracked when it has no block at all.
const NO_KEEL_BLOCK: &str = "no keel block in the release's values";

pub async fn run(args: ListArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    if args.workloads {
        let output = match args.output {
            OutputFormat::Json => super::workloads::WorkloadsOutput::Json,
            OutputFormat::Table => super::workloads::WorkloadsOutput::Table,
            OutputFormat::Yaml => anyhow::bail!("--workloads prints -o table or -o json"),
        };
        return super::workloads::run(
            super::workloads::WorkloadsArgs {
                namespace: args.namespace.filter(|_| !args.all_namespaces),
                all_namespaces: args.all_namespaces,
                selector: args.selector,
                output,
            },
            cluster,
        )
        .await;
    }
    let filter = args
        .filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("invalid --filter regular expression")?;
    let client = cluster.client().await?;
    // The kubeconfig is read once: the client knows the context's namespace.
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
        )
    };
    let driver = Driver::new(client, args.driver);
    let selector = list_selector(&args);
    let found = driver
        .newest_cached(namespace.as_deref(), &selector)
        .await
        .with_context(|| format!("cannot list releases ({} driver)", args.driver))?;
    // Skipped records are reported as warnings (naming each object) while decoding.
    let (kind, releases) = found.into_releases();
    let candidates: Vec<ReleaseRecords> = releases
        .into_iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.is_match(&r.name)))
        .filter(|r| {
            r.status_labels()
                .any(|label| status_selected(&args, &Status::parse(label)))
        })
        .collect();
    let rows = select_rows(&args, kind, candidates);
    let mut out = std::io::stdout().lock();
    if args.short {
        for row in &rows {
            writeln!(out, "{}", row.name)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.output {
        OutputFormat::Table => out.write_all(render_table(&rows, !args.no_headers).as_bytes())?,
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(&rows)?)?,
        // helm list -o yaml: sigs.k8s.io/yaml's Marshal, the writer `toYaml` uses too.
        OutputFormat::Yaml => {
            let rows = gotemplate::Value::from_json(&serde_json::to_value(&rows)?);
            let text = gotemplate::yaml_marshal(&rows)
                .map_err(|err| anyhow::anyhow!("cannot write the list as YAML: {err}"))?;
            out.write_all(text.as_bytes())?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The label query for the records `list` needs. A release's newest revision is never
/// `superseded` (Helm supersedes a revision only once a newer one is deployed), so unless
/// superseded releases were asked for, the apiserver can leave out every old revision.
fn list_selector(args: &ListArgs) -> String {
    let mut selector = "owner=helm".to_string();
    if !(args.all || args.superseded) {
        selector.push_str(",status!=superseded");
    }
    if let Some(extra) = args
        .selector
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        selector.push(',');
        selector.push_str(extra);
    }
    selector
}

/// Helm's state mask: explicit flags, `--all`, or by default deployed and failed.
fn status_selected(args: &ListArgs, status: &Status) -> bool {
    if args.all {
        return true;
    }
    let any_flag = args.deployed
        || args.failed
        || args.pending
        || args.superseded
        || args.uninstalled
        || args.uninstalling;
    match status {
        Status::Deployed => args.deployed || !any_flag,
        Status::Failed => args.failed || !any_flag,
        Status::PendingInstall | Status::PendingUpgrade | Status::PendingRollback => args.pending,
        Status::Superseded => args.superseded,
        Status::Uninstalled => args.uninstalled,
        Status::Uninstalling => args.uninstalling,
        Status::Unknown | Status::Other(_) => false,
    }
}

fn sort_rows(rows: &mut [ListedRelease], by_date: bool, reverse: bool) {
    if by_date {
        rows.sort_by(|a, b| {
            parse_time(&a.last_deployed)
                .cmp(&parse_time(&b.last_deployed))
                .then_with(|| a.name.cmp(&b.name))
        });
    } else {
        rows.sort_by(|a, b| (&a.name, &a.namespace).cmp(&(&b.name, &b.namespace)));
    }
    if reverse {
        rows.reverse();
    }
}

/// The rows to print, in order: decoded, filtered by status, sorted, then `--offset` and
/// `--max` applied as helm applies them (`--max 0` means no limit).
///
/// Sorted by name (the default), the rows to print are the first ones in label order, so
/// releases are decoded in that order and only until enough rows are found: `list` of many
/// releases decodes the 256 it prints, not all of them. Sorted by date, everything is decoded.
fn select_rows(
    args: &ListArgs,
    kind: DriverKind,
    mut candidates: Vec<ReleaseRecords>,
) -> Vec<ListedRelease> {
    let rows_of = |batch: Vec<ReleaseRecords>| -> Vec<ListedRelease> {
        // Skipped records were already reported as warnings naming each object.
        let (rows, _skipped) = decode_releases_map(kind, batch, &|stored| {
            if !status_selected(args, &stored.release.status()) {
                return None;
            }
            let mut row = listed_release(&stored);
            if let Some(layout) = &args.time_format {
                row.updated = format_go_layout(&row.last_deployed, layout);
            }
            Some(row)
        });
        rows
    };
    let wanted = args.offset.saturating_add(args.max);
    let mut rows = if args.date || args.max == 0 {
        rows_of(candidates)
    } else {
        candidates.sort_by(|a, b| (&a.name, &a.namespace).cmp(&(&b.name, &b.namespace)));
        if args.reverse {
            candidates.reverse();
        }
        let mut rows = Vec::new();
        let mut rest = candidates.into_iter();
        while rows.len() < wanted {
            // Decoding may drop releases (status filter, corrupt records): ask for exactly
            // the rows still missing, until the candidates run out.
            let batch: Vec<ReleaseRecords> = rest.by_ref().take(wanted - rows.len()).collect();
            if batch.is_empty() {
                break;
            }
            rows.extend(rows_of(batch));
        }
        rows
    };
    sort_rows(&mut rows, args.date, args.reverse);
    let limit = if args.max == 0 { usize::MAX } else { args.max };
    rows.into_iter().skip(args.offset).take(limit).collect()
}

/// Builds the row for one release's newest revision.
pub fn listed_release(stored: &StoredRelease) -> ListedRelease {
    let release = &stored.release;
    let (chart, app_version) = match &release.chart {
        Some(chart) if chart.metadata.is_some() => (
            chart.name_version(),
            chart
                .metadata_str("appVersion")
                .unwrap_or_default()
                .to_string(),
        ),
        _ => ("MISSING".to_string(), "MISSING".to_string()),
    };
    let last_deployed = release
        .info
        .as_ref()
        .and_then(|i| i.last_deployed.clone())
        .unwrap_or_default();
    let (keel, error) = match keel::read_release(release) {
        Ok(Some(block)) => (Some(listed_keel(&block)), None),
        Ok(None) => (None, Some(NO_KEEL_BLOCK.to_string())),
        Err(err) => (
            None,
            Some(format!(
                "malformed keel block: {}: {}",
                err.field, err.problem
            )),
        ),
    };
    ListedRelease {
        name: release.name().to_string(),
        namespace: stored.namespace.clone(),
        revision: release.version(),
        updated: go_time_string(&last_deployed),
        status: release.status().to_string(),
        chart,
        app_version,
        keel,
        error,
        last_deployed,
    }
}

fn listed_keel(block: &KeelBlock) -> ListedKeel {
    ListedKeel {
        policy: block.policy.clone(),
        trigger: block.trigger.to_string(),
        poll_schedule: block.poll_schedule().to_string(),
        images: block
            .images
            .iter()
            .map(|image| ListedImage {
                repository: image.repository.clone(),
                tag: image.tag.clone(),
                digest: image.digest.clone(),
                policy: image.effective_policy(block).to_string(),
            })
            .collect(),
        warnings: block.warnings.clone(),
    }
}

/// The table `helm list` prints (every cell padded to its column, cells joined by a tab),
/// with keelson's KEEL POLICY and IMAGES columns added.
pub fn render_table(rows: &[ListedRelease], headers: bool) -> String {
    let mut table: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    if headers {
        table.push(
            [
                "NAME",
                "NAMESPACE",
                "REVISION",
                "UPDATED",
                "STATUS",
                "CHART",
                "APP VERSION",
                "KEEL POLICY",
                "IMAGES",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
    }
    for row in rows {
        let (policy, images) = match (&row.keel, &row.error) {
            (Some(keel), _) => (
                keel.policy.clone(),
                keel.images
                    .iter()
                    .map(|image| match &image.tag {
                        Some(tag) => format!("{}:{tag}", image.repository),
                        None => image.repository.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (None, Some(error)) => ("-".to_string(), error.clone()),
            (None, None) => ("-".to_string(), String::new()),
        };
        table.push(vec![
            row.name.clone(),
            row.namespace.clone(),
            row.revision.to_string(),
            row.updated.clone(),
            row.status.clone(),
            row.chart.clone(),
            row.app_version.clone(),
            policy,
            images,
        ]);
    }
    let columns = table.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok()
}

/// Formats an RFC 3339 time as Go's `time.Time.String()` does after `time.Parse`:
/// `2006-01-02 15:04:05.999999999 -0700 MST`, with `UTC` for `Z`, the local zone's abbreviation
/// when the offset is the local one, else the numeric offset again. `-` for a missing time.
pub fn go_time_string(rfc3339: &str) -> String {
    format_go_layout(rfc3339, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// The `±hh:mm` offset at the end of an RFC 3339 time.
fn written_offset(rfc3339: &str) -> Option<jiff::tz::Offset> {
    let tail = rfc3339.get(rfc3339.len().checked_sub(6)?..)?;
    let sign = match tail.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let hours: i32 = tail.get(1..3)?.parse().ok()?;
    let minutes: i32 = tail.get(4..6)?.parse().ok()?;
    jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Formats a release time with a Go layout (`--time-format "2006-01-02 15:04:05Z0700"`) through
/// the same Go time formatter Sprig's `date` uses. The zone is what Go's `time.Parse` gives the
/// written offset: `UTC` for `Z`, the local zone when the offset is the local one, else an
/// unnamed fixed zone.
pub fn format_go_layout(rfc3339: &str, layout: &str) -> String {
    let Some(timestamp) = parse_time(rfc3339) else {
        return if rfc3339.is_empty() {
            "-".to_string()
        } else {
            rfc3339.to_string()
        };
    };
    let zone = if rfc3339.ends_with('Z') || rfc3339.ends_with('z') {
        Zone::Utc
    } else {
        let written = written_offset(rfc3339).unwrap_or(jiff::tz::Offset::UTC);
        let local = jiff::tz::TimeZone::system()
            .to_offset_info(timestamp)
            .offset();
        if local == written {
            Zone::Local
        } else {
            Zone::Fixed(written.seconds())
        }
    };
    GoTime::from_unix_nanos(timestamp.as_nanosecond(), zone).format(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn go_layouts() {
        let t = "2026-11-27T06:46:12.29936459Z";
        assert_eq!(
            format_go_layout(t, "2006-01-02 15:04:05Z0700"),
            "2026-11-27 06:46:12Z"
        );
        assert_eq!(
            format_go_layout(t, "Jan _2 3:04PM .000 .999 MST"),
            "Nov 27 6:46AM .299 .299 UTC"
        );
        assert_eq!(
            format_go_layout(t, "Monday January 2, 06 002"),
            "Friday November 27, 26 331"
        );
        assert_eq!(
            format_go_layout(
                "2026-11-27T07:46:12+01:00",
                "15:04:05 -07:00 Z0700 (literal)"
            ),
            "07:46:12 +01:00 +0100 (literal)"
        );
        assert_eq!(format_go_layout("", "2006"), "-");
    }

    #[test]
    fn updated_column_matches_helms() {
        assert_eq!(
            go_time_string("2026-11-27T06:46:12.29936459Z"),
            "2026-11-27 06:46:12.29936459 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-11-27T06:46:12Z"),
            "2026-11-27 06:46:12 +0000 UTC"
        );
        assert!(
            go_time_string("2026-11-27T07:46:12.5+01:00")
                .starts_with("2026-11-27 07:46:12.5 +0100 ")
        );
        assert_eq!(go_time_string(""), "-");
    }

    fn stored(values: serde_json::Value, status: &str) -> StoredRelease {
        StoredRelease {
            release: serde_json::from_value(serde_json::json!({
                "name": "web", "version": 4, "namespace": "ns",
                "info": {"last_deployed": "2026-11-27T06:46:11.615310595Z", "status": status},
                "chart": {"metadata": {"name": "demo", "version": "0.1.0", "appVersion": "1.0.0"}, "values": values},
            }))
            .unwrap(),
            labels: BTreeMap::new(),
            namespace: "ns".into(),
            object_name: "sh.helm.release.v1.web.v4".into(),
            resource_version: None,
        }
    }

    #[test]
    fn rows_carry_keel_or_the_reason() {
        let tracked = listed_release(&stored(
            serde_json::json!({"image": {"repository": "r", "tag": "1"},
                "keel": {"policy": "all", "trigger": "poll", "images": [{"repository": "image.repository", "tag": "image.tag"}]}}),
            "deployed",
        ));
        assert_eq!(tracked.chart, "demo-0.1.0");
        assert_eq!(tracked.revision, 4);
        assert_eq!(tracked.error, None);
        let json = serde_json::to_value(&tracked).unwrap();
        assert_eq!(json["revision"], 4);
        assert_eq!(json["keel"]["policy"], "all");
        assert_eq!(json["keel"]["trigger"], "poll");
        assert_eq!(json["keel"]["images"][0]["repository"], "r");
        assert_eq!(json["keel"]["images"][0]["tag"], "1");

        let untracked = listed_release(&stored(serde_json::json!({}), "deployed"));
        assert_eq!(untracked.keel, None);
        assert_eq!(untracked.error.as_deref(), Some(NO_KEEL_BLOCK));

        let malformed = listed_release(&stored(
            serde_json::json!({"keel": {"policy": 3}}),
            "failed",
        ));
        assert!(malformed.error.unwrap().contains("keel.policy"));

        let table = render_table(&[tracked], true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME\tNAMESPACE\tREVISION\tUPDATED"));
        assert!(
            lines[1].contains("\tdemo-0.1.0\t1.0.0      \tall        \tr:1"),
            "{table}"
        );
    }

    #[test]
    fn default_state_mask_is_deployed_and_failed() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ListArgs,
        }
        let args = Wrapper::parse_from(["x"]).args;
        assert!(status_selected(&args, &Status::Deployed));
        assert!(status_selected(&args, &Status::Failed));
        assert!(!status_selected(&args, &Status::Superseded));
        assert!(!status_selected(&args, &Status::PendingUpgrade));
        let args = Wrapper::parse_from(["x", "--pending"]).args;
        assert!(status_selected(&args, &Status::PendingUpgrade));
        assert!(!status_selected(&args, &Status::Deployed));
        let args = Wrapper::parse_from(["x", "-a"]).args;
        assert!(status_selected(&args, &Status::Uninstalled));
        assert_eq!(list_selector(&args), "owner=helm");
        let args = Wrapper::parse_from(["x", "-l", "team=web"]).args;
        assert_eq!(
            list_selector(&args),
            "owner=helm,status!=superseded,team=web"
        );
        let args = Wrapper::parse_from(["x", "--superseded"]).args;
        assert_eq!(list_selector(&args), "owner=helm");
    }
}
