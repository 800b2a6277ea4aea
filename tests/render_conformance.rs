//! Conformance of `keelson template` with the real `helm template`: every chart × values case
//! of fixtures/charts and of the shared corpus is rendered by both, compared byte for byte, and
//! reported as `N/M byte-identical` with a unified diff per mismatch. Lines that differ between
//! two runs of helm itself (random and time functions) are masked, and such cases are listed.
//!
//! `scripts/conformance` runs this with output shown. Variables: KEELSON_SHARED_CHARTS (the
//! corpus), KEELSON_CONFORMANCE_HELM=helm4 (compare with helm 4 instead of helm 3),
//! KEELSON_CONFORMANCE_FILTER=substring (only matching cases).

// tests/support (shared, not ours) trips this lint with the current clippy.
#![allow(clippy::collapsible_if)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `helm template` invocation to compare.
struct Case {
    label: String,
    chart: PathBuf,
    values: Option<PathBuf>,
    extra_flags: Vec<String>,
}

/// What one tool printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[String], cwd: &Path) -> Run {
    match Command::new(program).args(args).current_dir(cwd).output() {
        Ok(out) => Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(err) => panic!("cannot run {program}: {err}"),
    }
}

fn case_args(case: &Case) -> Vec<String> {
    let mut args = vec![
        "template".to_string(),
        "rel".to_string(),
        case.chart.display().to_string(),
        "-n".to_string(),
        "demo".to_string(),
    ];
    if let Some(values) = &case.values {
        args.push("-f".to_string());
        args.push(values.display().to_string());
    }
    args.push("--kube-version".to_string());
    args.push("1.30.0".to_string());
    args.extend(case.extra_flags.iter().cloned());
    args
}

fn read_flags(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Cases of a directory laid out as the corpus: `<chart>/` and `values/<chart>/<case>.yaml`.
fn corpus_cases(root: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("values")) else {
        return cases;
    };
    let mut charts: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    charts.sort();
    for values_dir in charts {
        let Some(name) = values_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            continue;
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&values_dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        {
            let case_name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            cases.push(Case {
                label: format!("{name}/{case_name}"),
                chart: root.join(&name),
                values: Some(file.clone()),
                extra_flags: read_flags(&file.with_extension("flags")),
            });
        }
    }
    cases
}

/// Cases of fixtures/charts: each chart with its `ci/<case>.yaml` (+ `.flags`), or one default
/// case without values when it has no ci/ directory.
fn fixture_cases(root: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut charts: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    charts.sort();
    for chart in charts
        .into_iter()
        .filter(|c| c.join("Chart.yaml").is_file())
    {
        let name = chart
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(chart.join("ci"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let value_files: Vec<&PathBuf> = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
            .collect();
        if value_files.is_empty() {
            cases.push(Case {
                label: format!("{name}/default"),
                chart: chart.clone(),
                values: None,
                extra_flags: Vec::new(),
            });
        }
        for file in value_files {
            let case_name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            cases.push(Case {
                label: format!("{name}/{case_name}"),
                chart: chart.clone(),
                values: Some(file.clone()),
                extra_flags: read_flags(&file.with_extension("flags")),
            });
        }
    }
    cases
}

/// Replaces the lines that differ between two helm runs by a marker in all outputs. Returns
/// whether anything was masked.
fn mask(first: &str, second: &str, ours: &str) -> (String, String, bool) {
    if first == second {
        return (first.to_string(), ours.to_string(), false);
    }
    let a: Vec<&str> = first.split('\n').collect();
    let b: Vec<&str> = second.split('\n').collect();
    let o: Vec<&str> = ours.split('\n').collect();
    let masked_helm: Vec<String> = a
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if b.get(i) == Some(line) {
                line.to_string()
            } else {
                "<masked: differs between two helm runs>".to_string()
            }
        })
        .collect();
    let masked_ours: Vec<String> = o
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if a.get(i).is_some() && b.get(i) != a.get(i) {
                "<masked: differs between two helm runs>".to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    (masked_helm.join("\n"), masked_ours.join("\n"), true)
}

fn unified_diff(label: &str, expected: &str, got: &str) -> String {
    let dir = std::env::temp_dir().join(format!("keelson-conformance-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let safe = label.replace('/', "__");
    let (e, g) = (
        dir.join(format!("{safe}.helm")),
        dir.join(format!("{safe}.keelson")),
    );
    let _ = std::fs::write(&e, expected);
    let _ = std::fs::write(&g, got);
    let out = Command::new("diff")
        .args(["-u", "--label", "helm", "--label", "keelson"])
        .arg(&e)
        .arg(&g)
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // Long diffs are cut so the report stays readable.
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() > 80 {
                format!(
                    "{}\n... ({} more diff lines)\n",
                    lines[..80].join("\n"),
                    lines.len() - 80
                )
            } else {
                text
            }
        }
        Err(err) => format!("(diff unavailable: {err})\n"),
    }
}

/// Runs every case; prints the report; returns (identical, total, labels of differing cases).
fn compare(set: &str, cases: &[Case]) -> (usize, usize, Vec<String>) {
    let helm_var = match std::env::var("KEELSON_CONFORMANCE_HELM").as_deref() {
        Ok("helm4") => "HELM4",
        _ => "HELM3",
    };
    let helm = support::env_var(helm_var);
    let keelson = env!("CARGO_BIN_EXE_keelson");
    let filter = std::env::var("KEELSON_CONFORMANCE_FILTER").unwrap_or_default();
    let mut identical = 0;
    let mut total = 0;
    let mut masked_cases = Vec::new();
    let mut failures = Vec::new();
    let mut differing = Vec::new();
    for case in cases.iter().filter(|c| c.label.contains(&filter)) {
        total += 1;
        // Paths in .flags files are relative to the directory holding the chart.
        let cwd = case
            .chart
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let mut args = case_args(case);
        let first = run(&helm, &args, &cwd);
        let second = run(&helm, &args, &cwd);
        if helm_var == "HELM4" {
            args.push("--helm4".to_string());
        }
        let ours = run(keelson, &args, &cwd);
        // When both fail, stdout (empty) and the exit code are what a script sees; the two
        // error messages are shown for comparison.
        let (expected, got, was_masked) = mask(&first.stdout, &second.stdout, &ours.stdout);
        if !first.ok && !ours.ok {
            println!(
                "        both fail: helm: {} | keelson: {}",
                first.stderr.trim().lines().next().unwrap_or_default(),
                ours.stderr.trim().lines().next().unwrap_or_default()
            );
        }
        if was_masked {
            masked_cases.push(case.label.clone());
        }
        if first.ok == ours.ok && expected == got {
            identical += 1;
            println!(
                "  ok    {}{}",
                case.label,
                if was_masked { " (masked)" } else { "" }
            );
        } else {
            println!("  DIFF  {}", case.label);
            differing.push(case.label.clone());
            let detail = if first.ok != ours.ok {
                format!(
                    "helm {} / keelson {}\nhelm stderr: {}\nkeelson stderr: {}\n",
                    if first.ok { "succeeded" } else { "failed" },
                    if ours.ok { "succeeded" } else { "failed" },
                    first.stderr.trim(),
                    ours.stderr.trim()
                )
            } else {
                unified_diff(&case.label, &expected, &got)
            };
            failures.push(format!("=== {} ===\n{detail}", case.label));
        }
    }
    for failure in &failures {
        println!("{failure}");
    }
    if !masked_cases.is_empty() {
        println!(
            "{set}: compared with random/time values masked: {}",
            masked_cases.join(", ")
        );
    }
    println!(
        "{set}: {identical}/{total} byte-identical with {}",
        helm_var.to_lowercase()
    );
    (identical, total, differing)
}

#[test]
fn fixture_charts_render_byte_identical_to_helm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/charts");
    let cases = fixture_cases(&root);
    assert!(
        !cases.is_empty(),
        "no fixture charts under {}",
        root.display()
    );
    let (identical, total, differing) = compare("fixtures/charts", &cases);
    for (label, reason) in KNOWN_FIXTURE_GAPS {
        if differing.iter().any(|d| d == label) {
            println!("known gap: {label}: {reason}");
        } else {
            println!("known gap {label} is now byte-identical: remove it from KNOWN_FIXTURE_GAPS");
        }
    }
    let unexpected: Vec<&String> = differing
        .iter()
        .filter(|d| !KNOWN_FIXTURE_GAPS.iter().any(|(label, _)| label == d))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{identical}/{total}: fixture cases differ from helm (see diffs above): {unexpected:?}"
    );
}

/// The shared corpus: every case byte-identical with helm (lines helm itself does not repeat
/// between two runs masked). Fails, naming the command to run, when the corpus is absent.
#[test]
fn shared_corpus_renders_byte_identical_to_helm() {
    let root = support::shared_charts();
    let cases = corpus_cases(&root);
    assert!(
        !cases.is_empty(),
        "no cases under {}/values",
        root.display()
    );
    let (identical, total, differing) = compare("shared corpus", &cases);
    assert!(
        differing.is_empty() && identical == total,
        "only {identical}/{total} corpus cases are byte-identical (see diffs above): {differing:?}"
    );
}

/// Fixture cases that still differ, each with the entry of docs/renderer-gaps.md that explains it.
/// Empty: every fixture case is byte-identical.
const KNOWN_FIXTURE_GAPS: &[(&str, &str)] = &[];
