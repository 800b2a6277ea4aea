//! The fast YAML path (`gocompat::yaml::fast`) against the saphyr-based loaders on real text:
//! every YAML file of the shared corpus and of fixtures/ outside `templates/` (values files,
//! every chart's and subchart's values.yaml, Chart.yaml...) and every document `keelson
//! template` renders for the conformance cases. Whenever the fast path reads a document, the
//! loaders must read the same value; the counts of documents read and left to the loaders are
//! printed (`cargo test --test yaml_fast -- --nocapture`).
//!
//! Needs the corpus: KEELSON_SHARED_CHARTS (the test fails naming it when missing).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gocompat::yaml::{FirstDocumentReading, fast_path_only, without_fast_path};

const READINGS: [FirstDocumentReading; 3] = [
    FirstDocumentReading::Values,
    FirstDocumentReading::ManifestHead,
    FirstDocumentReading::Manifest,
];

/// Documents read by the fast path / all documents, per reading.
#[derive(Default)]
struct Tally {
    read: [usize; 3],
    total: usize,
    bytes_read: usize,
    bytes: usize,
}

impl Tally {
    fn check(&mut self, text: &str, source: &str) {
        self.total += 1;
        self.bytes += text.len();
        for (slot, reading) in READINGS.into_iter().enumerate() {
            let Some(fast) = fast_path_only(text, reading) else {
                continue;
            };
            self.read[slot] += 1;
            if slot == 0 {
                self.bytes_read += text.len();
            }
            match without_fast_path(text, source, reading) {
                Ok(slow) => assert_eq!(
                    fast, slow,
                    "{source} ({reading:?}): the fast path and the loaders disagree"
                ),
                Err(err) => {
                    panic!(
                        "{source} ({reading:?}): the fast path reads it, the loaders refuse: {err}"
                    )
                }
            }
        }
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: fast path read {} of {} as values, {} as manifest heads, {} as manifests ({} of {} bytes)",
            self.read[0], self.total, self.read[1], self.read[2], self.bytes_read, self.bytes
        );
    }
}

/// YAML files under `root`, leaving out templates (they are not YAML before rendering).
fn yaml_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "templates") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `keelson template` invocations: corpus charts with `values/<chart>/<case>.yaml` (+
/// `.flags`), fixture charts with `ci/<case>.yaml` or without values.
fn render_cases(corpus: &Path, fixtures: &Path) -> Vec<(PathBuf, Option<PathBuf>, Vec<String>)> {
    let flags = |values: &Path| -> Vec<String> {
        std::fs::read_to_string(values.with_extension("flags"))
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let listing = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    let is_yaml = |p: &PathBuf| p.extension().is_some_and(|e| e == "yaml");
    let mut cases = Vec::new();
    for values_dir in listing(&corpus.join("values")) {
        let Some(name) = values_dir.file_name() else {
            continue;
        };
        for values in listing(&values_dir).into_iter().filter(is_yaml) {
            let extra = flags(&values);
            cases.push((corpus.join(name), Some(values), extra));
        }
    }
    for chart in listing(fixtures) {
        if !chart.join("Chart.yaml").is_file() {
            continue;
        }
        let values: Vec<PathBuf> = listing(&chart.join("ci"))
            .into_iter()
            .filter(is_yaml)
            .collect();
        if values.is_empty() {
            cases.push((chart.clone(), None, Vec::new()));
        }
        for file in values {
            let extra = flags(&file);
            cases.push((chart.clone(), Some(file), extra));
        }
    }
    cases
}

#[test]
fn fast_path_reads_the_corpus_as_the_loaders_do() {
    let corpus = support::shared_charts();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = repo.join("fixtures");

    let mut files = Tally::default();
    for root in [&corpus, &fixtures] {
        for path in yaml_files(root) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            files.check(&text, &path.display().to_string());
        }
    }
    files.report("YAML files (values, values.yaml, Chart.yaml...)");

    let mut documents = Tally::default();
    let mut rendered = 0;
    for (chart, values, extra) in render_cases(&corpus, &fixtures.join("charts")) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keelson"));
        command.args(["template", "rel"]).arg(&chart).args([
            "-n",
            "demo",
            "--kube-version",
            "1.30.0",
        ]);
        if let Some(values) = &values {
            command.arg("-f").arg(values);
        }
        let output = match command.args(&extra).current_dir(&corpus).output() {
            Ok(output) => output,
            Err(err) => panic!("cannot run keelson template for {}: {err}", chart.display()),
        };
        if !output.status.success() {
            // Error cases of the conformance set render nothing to read.
            continue;
        }
        rendered += 1;
        let text = String::from_utf8_lossy(&output.stdout);
        let label = format!(
            "{} {}",
            chart.display(),
            values
                .as_ref()
                .map(|v| v.display().to_string())
                .unwrap_or_default()
        );
        for (i, doc) in keelson::render::manifest::split_manifests(&text)
            .iter()
            .enumerate()
        {
            documents.check(doc, &format!("{label} document {i}"));
        }
    }
    documents.report(&format!("documents rendered by {rendered} cases"));

    assert!(files.total > 100, "only {} YAML files found", files.total);
    assert!(rendered > 40, "only {rendered} cases rendered");
    // The fast path is only worth having if it reads most real text; a change that makes it
    // decline everything would pass the comparisons above without these.
    assert!(
        files.read[0] * 100 > files.total * 75,
        "fast path read only {} of {} YAML files",
        files.read[0],
        files.total
    );
    assert!(
        documents.read[1] * 10 > documents.total * 9,
        "fast path read only {} of {} rendered documents",
        documents.read[1],
        documents.total
    );
    assert!(
        documents.bytes_read * 100 > documents.bytes * 95,
        "fast path read only {} of {} rendered bytes",
        documents.bytes_read,
        documents.bytes
    );
}
