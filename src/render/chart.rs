//! Loads Helm charts from a directory or a `.tgz` exactly as Helm's loader sorts their files.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::render::helmignore::IgnoreRules;
use crate::render::helper::{SharedWork, Take, spawn_on_another_cpu};
use crate::render::release::HelmFlavor;
use crate::values::documents::go_values_error;
use crate::values::{DocumentsError, Values, ValuesError, load_values_documents};
use gocompat::yaml;

/// A file of a chart: its path relative to the chart root (`templates/x.yaml`, `files/a.txt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// One dependency entry of Chart.yaml (or requirements.yaml for apiVersion v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    #[serde(
        default,
        rename = "import-values",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub import_values: Vec<Json>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
}

/// A maintainer entry of Chart.yaml.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Maintainer {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// Chart.yaml as Helm's `chart.Metadata` holds it (JSON field names as Helm stores them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub home: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tags: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_version: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub chart_type: String,
}

/// A loaded chart: metadata, default values, templates, other files and subcharts.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub metadata: Metadata,
    /// values.yaml as Helm reads it (numbers are float64).
    pub values: Values,
    /// values.schema.json, when present.
    pub schema: Option<Vec<u8>>,
    /// Files under `templates/`, in the order the loader saw them.
    pub templates: Vec<ChartFile>,
    /// Every other file (`.Files` sees these), except Chart.yaml, values.yaml, the schema, locks.
    pub files: Vec<ChartFile>,
    /// Subcharts, first those vendored under charts/ (sorted by directory name).
    pub dependencies: Vec<Chart>,
}

/// What can go wrong loading a chart; each names the chart path or file involved.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot read chart {path}: {message}")]
    Io { path: String, message: String },
    #[error("path {path:?} not found")]
    NotFound { path: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot load {file}")]
    Values {
        file: String,
        #[source]
        source: ValuesError,
    },
    /// A chart's values.yaml that helm's loader refuses, in helm's words: `go_text` is what
    /// sigs.k8s.io/yaml says (go-yaml's or encoding/json's message). Helm names the file
    /// only as `values.yaml`; the chart path is in the enclosing error when it is a subchart.
    #[error("cannot load values.yaml: {}{go_text}", if *helm4 { "cannot unmarshal yaml document: " } else { "" })]
    ValuesYaml { go_text: String, helm4: bool },
    /// Helm 4's reader found a `---` line with more than a comment after it.
    #[error(
        "cannot load values.yaml: error reading yaml document: invalid Yaml document separator: {after}"
    )]
    ValuesYamlSeparator { after: String },
    #[error("error unpacking subchart {subchart} in {parent}")]
    Subchart {
        subchart: String,
        parent: String,
        #[source]
        source: Box<ChartError>,
    },
}

impl Chart {
    /// The chart's name (an alias once dependencies are processed).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == "library"
    }

    /// `crds/` files with a manifest extension, this chart's first, then its subcharts'.
    pub fn crd_objects(&self, full_path: &str) -> Vec<(String, &ChartFile)> {
        let mut crds = Vec::new();
        for file in &self.files {
            if file.name.starts_with("crds/") && has_manifest_extension(&file.name) {
                crds.push((format!("{full_path}/{}", file.name), file));
            }
        }
        for dep in &self.dependencies {
            crds.extend(dep.crd_objects(&format!("{full_path}/charts/{}", dep.name())));
        }
        crds
    }
}

fn has_manifest_extension(name: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.to_ascii_lowercase().ends_with(ext))
}

/// Loads a chart from a directory or a `.tgz`/`.tar.gz` archive, as helm 3 does.
pub fn load(path: &Path) -> Result<Chart, ChartError> {
    load_as(path, HelmFlavor::Helm3)
}

/// Loads a chart as `flavor`'s loader does: helm 4 merges every `---` document of each
/// values.yaml and words its errors its own way.
pub fn load_as(path: &Path, flavor: HelmFlavor) -> Result<Chart, ChartError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ChartError::NotFound {
            path: display.clone(),
        },
        _ => ChartError::Io {
            path: display.clone(),
            message: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        load_dir_as(path, flavor)
    } else {
        let bytes = std::fs::read(path).map_err(|e| ChartError::Io {
            path: display.clone(),
            message: e.to_string(),
        })?;
        load_archive_as(&bytes, &display, flavor)
    }
}

/// `loader.LoadDir`: walks the directory in lexical order, applying `.helmignore`.
pub fn load_dir(root: &Path) -> Result<Chart, ChartError> {
    load_dir_as(root, HelmFlavor::Helm3)
}

fn load_dir_as(root: &Path, flavor: HelmFlavor) -> Result<Chart, ChartError> {
    let display = root.display().to_string();
    let mut rules = IgnoreRules::defaults();
    let ignore_file = root.join(".helmignore");
    if ignore_file.is_file() {
        let text = std::fs::read_to_string(&ignore_file).map_err(|e| ChartError::Io {
            path: ignore_file.display().to_string(),
            message: e.to_string(),
        })?;
        rules = IgnoreRules::parse(&text).map_err(|message| ChartError::Invalid {
            path: ignore_file.display().to_string(),
            message,
        })?;
    }
    let mut listed = Vec::new();
    let stopped = walk(root, root, &rules, &mut listed).err();
    let files = read_listed(listed, stopped)?;
    load_files_as(files, &display, flavor)
}

/// From this many files on, a helper thread reads half of them: a file costs about as much
/// as the helper's start on the virtual machines measured (docs/renderer.md).
const FILES_WORTH_A_READER: usize = 24;

/// The files `walk` listed, read by this thread and a helper on another CPU. The result is
/// the sequential walk's: the first file that cannot be read, in walk order, is the error,
/// and `stopped` (where the walk itself failed) only after every file listed before it.
fn read_listed(
    listed: Vec<(PathBuf, String)>,
    stopped: Option<ChartError>,
) -> Result<Vec<ChartFile>, ChartError> {
    struct Reads {
        paths: Vec<PathBuf>,
        shared: SharedWork<std::io::Result<Vec<u8>>>,
    }
    impl Reads {
        fn read(&self, end: Take) {
            while let Some(item) = self.shared.claim(end) {
                let result = match self.paths.get(item) {
                    Some(path) => read_whole(path),
                    None => Err(std::io::Error::other("no such item")),
                };
                self.shared.finish(item, result);
            }
        }
    }
    let (paths, names): (Vec<PathBuf>, Vec<String>) = listed.into_iter().unzip();
    let reads = std::sync::Arc::new(Reads {
        shared: SharedWork::new(paths.len()),
        paths,
    });
    if reads.paths.len() >= FILES_WORTH_A_READER {
        let helper_reads = reads.clone();
        // Without the helper this thread reads every file itself.
        let _ = spawn_on_another_cpu(
            "keelson-read",
            256 * 1024,
            Box::new(move || helper_reads.read(Take::Back)),
        );
    }
    reads.read(Take::Front);
    let results = reads.shared.wait_for_all();
    let mut files = Vec::with_capacity(names.len());
    for ((name, path), result) in names.into_iter().zip(&reads.paths).zip(results) {
        let io_err = |message: String| ChartError::Io {
            path: path.display().to_string(),
            message,
        };
        match result {
            Some(Ok(data)) => files.push(ChartFile {
                name,
                data: strip_bom(data),
            }),
            Some(Err(err)) => return Err(io_err(err.to_string())),
            None => return Err(io_err("the file was not read".to_string())),
        }
    }
    match stopped {
        Some(err) => Err(err),
        None => Ok(files),
    }
}

/// Lists the files of `dir` to load (path, name in the chart) in Helm's order, recursively,
/// without reading them; stops at the first entry Helm's loader would fail on.
fn walk(
    root: &Path,
    dir: &Path,
    rules: &IgnoreRules,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<(), ChartError> {
    let io_err = |p: &Path, e: std::io::Error| ChartError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    // The directory listing tells files from directories (d_type) without a stat per entry;
    // only symlinks, which Helm follows, and entries of unknown type are stat'ed.
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .map(|entry| entry.and_then(|e| Ok((e.path(), e.file_type()?))))
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file_type) in entries {
        let relative = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let meta = if file_type.is_symlink() {
            std::fs::metadata(&path)
                .map_err(|e| io_err(&path, e))?
                .file_type()
        } else {
            file_type
        };
        if meta.is_dir() {
            if rules.ignore(&relative, true) {
                continue;
            }
            walk(root, &path, rules, out)?;
            continue;
        }
        if rules.ignore(&relative, false) {
            continue;
        }
        if !meta.is_file() {
            return Err(ChartError::Invalid {
                path: path.display().to_string(),
                message: "cannot load irregular file as it has file mode type bits set".into(),
            });
        }
        out.push((path, relative));
    }
    Ok(())
}

/// A whole file, read through one scratch buffer per thread into a vector of its exact size:
/// open, read, read (end of file), close. `std::fs::read` (and `File::read_to_end`) first ask
/// for the size and the position, two more system calls per file for a chart's dozens of
/// files. Only a file larger than the scratch buffer is asked for its size, and read straight
/// into its vector: a scratch buffer grown to the largest file (CRDs of hundreds of KiB) was
/// zeroed page by page and then copied, touching thrice the memory the file needs.
fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const SCRATCH_BYTES: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut file = std::fs::File::open(path)?;
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < SCRATCH_BYTES {
            scratch.resize(SCRATCH_BYTES, 0);
        }
        let mut filled = 0;
        while filled < scratch.len() {
            match file.read(&mut scratch[filled..]) {
                Ok(0) => return Ok(scratch[..filled].to_vec()),
                Ok(read) => filled += read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let size = file
            .metadata()
            .ok()
            .and_then(|meta| usize::try_from(meta.len()).ok())
            .unwrap_or(0);
        let mut data = Vec::with_capacity(size.max(filled));
        data.extend_from_slice(&scratch[..filled]);
        file.read_to_end(&mut data)?;
        Ok(data)
    })
}

fn strip_bom(mut data: Vec<u8>) -> Vec<u8> {
    if data.starts_with(&[0xEF, 0xBB, 0xBF]) {
        data.drain(..3);
    }
    data
}

/// Helm's cap on the decompressed size of all files of one chart archive (100 MiB).
pub const MAX_DECOMPRESSED_CHART_SIZE: u64 = 100 * 1024 * 1024;
/// Helm 3's cap on the decompressed size of one file of a chart archive (5 MiB).
pub const MAX_DECOMPRESSED_FILE_SIZE: u64 = 5 * 1024 * 1024;

/// `loader.LoadArchive`: a gzipped tar whose entries all live under one top directory. Like
/// Helm, refuses archives that decompress to more than [`MAX_DECOMPRESSED_CHART_SIZE`] in all
/// or [`MAX_DECOMPRESSED_FILE_SIZE`] in one file, before reading the data (a gzip bomb costs
/// nothing), with Helm 3's messages.
pub fn load_archive(bytes: &[u8], display: &str) -> Result<Chart, ChartError> {
    load_archive_as(bytes, display, HelmFlavor::Helm3)
}

/// [`load_archive`] as `flavor`'s loader does it.
pub fn load_archive_as(
    bytes: &[u8],
    display: &str,
    flavor: HelmFlavor,
) -> Result<Chart, ChartError> {
    let invalid = |message: String| ChartError::Invalid {
        path: display.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = Vec::new();
    let mut remaining = MAX_DECOMPRESSED_CHART_SIZE;
    let too_large = || {
        invalid(format!(
            "decompressed chart is larger than the maximum size {MAX_DECOMPRESSED_CHART_SIZE}"
        ))
    };
    let entries = archive
        .entries()
        .map_err(|e| invalid(format!("not a gzipped tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("corrupt archive: {e}")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| invalid(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .replace('\\', "/");
        if name == "pax_global_header" {
            continue;
        }
        let mut parts = name.splitn(2, '/');
        let top = parts.next().unwrap_or_default();
        let Some(relative) = parts.next() else {
            if top == "Chart.yaml" {
                return Err(invalid("chart yaml not in base directory".into()));
            }
            continue;
        };
        if relative.is_empty() {
            continue;
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > remaining {
            return Err(too_large());
        }
        if size > MAX_DECOMPRESSED_FILE_SIZE {
            return Err(invalid(format!(
                "decompressed chart file {name:?} is larger than the maximum file size {MAX_DECOMPRESSED_FILE_SIZE}"
            )));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(size.min(MAX_DECOMPRESSED_FILE_SIZE) + 1)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("cannot read {name}: {e}")))?;
        remaining = remaining.saturating_sub(data.len() as u64);
        files.push(ChartFile {
            name: relative.to_string(),
            data: strip_bom(data),
        });
    }
    if files.is_empty() {
        return Err(invalid("no files in chart archive".into()));
    }
    load_files_as(files, display, flavor)
}

/// A file's text, invalid UTF-8 replaced as before. Valid text (the usual case) is checked
/// whole first: `from_utf8_lossy`'s chunk walk cost ~7 instructions a byte (0.4M on vault's
/// values.yaml), several times the plain check.
fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// `loader.LoadFiles`: sorts files into metadata, values, schema, templates, subcharts, files.
pub fn load_files(files: Vec<ChartFile>, display: &str) -> Result<Chart, ChartError> {
    load_files_as(files, display, HelmFlavor::Helm3)
}

/// [`load_files`] as `flavor`'s loader does it.
pub fn load_files_as(
    files: Vec<ChartFile>,
    display: &str,
    flavor: HelmFlavor,
) -> Result<Chart, ChartError> {
    let mut chart = Chart::default();
    let mut have_metadata = false;
    let mut requirements: Option<Vec<Dependency>> = None;
    let mut subchart_files: std::collections::BTreeMap<String, Vec<ChartFile>> = Default::default();
    // Chart.yaml first: other files' handling depends on the apiVersion.
    if let Some(file) = files.iter().find(|f| f.name == "Chart.yaml") {
        chart.metadata = parse_metadata(&file.data, &format!("{display}/Chart.yaml"))?;
        if chart.metadata.api_version.is_empty() {
            chart.metadata.api_version = "v1".to_string();
        }
        have_metadata = true;
    }
    let is_v1 = chart.metadata.api_version == "v1";
    for file in files {
        match file.name.as_str() {
            "Chart.yaml" | "Chart.lock" => {}
            "values.yaml" => {
                let source = format!("{display}/values.yaml");
                let text = text_of(&file.data);
                chart.values = match flavor {
                    HelmFlavor::Helm3 => {
                        yaml::parse_values(&text, &source).map_err(|e| ChartError::ValuesYaml {
                            go_text: go_values_error(e, &text),
                            helm4: false,
                        })?
                    }
                    HelmFlavor::Helm4 => {
                        load_values_documents(&text, &source).map_err(|e| match e {
                            DocumentsError::Document { go_text } => ChartError::ValuesYaml {
                                go_text,
                                helm4: true,
                            },
                            DocumentsError::Separator { after } => {
                                ChartError::ValuesYamlSeparator { after }
                            }
                        })?
                    }
                };
            }
            "values.schema.json" => chart.schema = Some(file.data),
            "requirements.yaml" => {
                let source = format!("{display}/requirements.yaml");
                let doc =
                    yaml::parse_first_document(&text_of(&file.data), &source).map_err(|e| {
                        ChartError::Values {
                            file: source.clone(),
                            source: e.into(),
                        }
                    })?;
                let deps = doc.get("dependencies").cloned().unwrap_or(Json::Null);
                if !deps.is_null() {
                    requirements =
                        Some(
                            serde_json::from_value(deps).map_err(|e| ChartError::Invalid {
                                path: source.clone(),
                                message: format!("cannot load requirements.yaml: {e}"),
                            })?,
                        );
                }
                if is_v1 {
                    chart.files.push(file);
                }
            }
            "requirements.lock" => {
                if is_v1 {
                    chart.files.push(file);
                }
            }
            name if name.starts_with("templates/") => chart.templates.push(file),
            name if name.starts_with("charts/") => {
                if name.ends_with(".prov") {
                    chart.files.push(file);
                    continue;
                }
                let rest = &name["charts/".len()..];
                let (subchart, inner) = match rest.split_once('/') {
                    Some((s, i)) => (s.to_string(), i.to_string()),
                    None => (rest.to_string(), rest.to_string()),
                };
                subchart_files.entry(subchart).or_default().push(ChartFile {
                    name: inner,
                    data: file.data,
                });
            }
            _ => chart.files.push(file),
        }
    }
    if let Some(deps) = requirements {
        chart.metadata.dependencies = deps;
    }
    if !have_metadata {
        return Err(ChartError::Invalid {
            path: display.to_string(),
            message: "Chart.yaml file is missing".into(),
        });
    }
    validate_metadata(&chart.metadata, display)?;
    for (name, files) in subchart_files {
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let sub_display = format!("{display}/charts/{name}");
        let loaded = if name.ends_with(".tgz") {
            match files.into_iter().find(|f| f.name == name) {
                Some(file) => load_archive_as(&file.data, &sub_display, flavor),
                None => Err(ChartError::Invalid {
                    path: sub_display.clone(),
                    message: format!("error unpacking subchart tar: expected {name}"),
                }),
            }
        } else {
            let inner: Vec<ChartFile> = files.into_iter().filter(|f| f.name != name).collect();
            load_files_as(inner, &sub_display, flavor)
        };
        let sub = loaded.map_err(|e| ChartError::Subchart {
            subchart: name.clone(),
            parent: chart.metadata.name.clone(),
            source: Box::new(e),
        })?;
        chart.dependencies.push(sub);
    }
    Ok(chart)
}

/// Parses Chart.yaml; string fields accept YAML numbers and booleans as Helm's loader does.
fn parse_metadata(data: &[u8], source: &str) -> Result<Metadata, ChartError> {
    let doc =
        yaml::parse_first_document(&text_of(data), source).map_err(|e| ChartError::Values {
            file: source.to_string(),
            source: e.into(),
        })?;
    let doc = stringify_scalars(doc, &["version", "appVersion", "kubeVersion", "name"]);
    serde_json::from_value(doc).map_err(|e| ChartError::Invalid {
        path: source.to_string(),
        message: format!("cannot load Chart.yaml: {e}"),
    })
}

/// Turns number/bool values of the named top-level keys (and dependency versions) into strings.
fn stringify_scalars(doc: Json, keys: &[&str]) -> Json {
    let Json::Object(mut map) = doc else {
        return doc;
    };
    let to_text = |v: &Json| match v {
        Json::Number(n) => Some(Json::String(gocompat::yaml::go_number_text(n))),
        Json::Bool(b) => Some(Json::String(b.to_string())),
        _ => None,
    };
    for key in keys {
        if let Some(text) = map.get(*key).and_then(to_text) {
            map.insert((*key).to_string(), text);
        }
    }
    if let Some(Json::Array(deps)) = map.get_mut("dependencies") {
        for dep in deps {
            if let Some(obj) = dep.as_object_mut()
                && let Some(text) = obj.get("version").and_then(to_text)
            {
                obj.insert("version".into(), text);
            }
        }
    }
    Json::Object(map)
}

fn validate_metadata(metadata: &Metadata, display: &str) -> Result<(), ChartError> {
    let invalid = |message: String| ChartError::Invalid {
        path: display.to_string(),
        message: format!("validation: {message}"),
    };
    if metadata.api_version.is_empty() {
        return Err(invalid("chart.metadata.apiVersion is required".into()));
    }
    if metadata.name.is_empty() {
        return Err(invalid("chart.metadata.name is required".into()));
    }
    if metadata.name.contains('/') || metadata.name.contains('\\') {
        return Err(invalid(format!(
            "chart.metadata.name {:?} is invalid",
            metadata.name
        )));
    }
    if metadata.version.is_empty() {
        return Err(invalid("chart.metadata.version is required".into()));
    }
    if gocompat::semver::parse_version(&metadata.version).is_none() {
        return Err(invalid(format!(
            "chart.metadata.version {:?} is invalid",
            metadata.version
        )));
    }
    if !metadata.chart_type.is_empty()
        && metadata.chart_type != "application"
        && metadata.chart_type != "library"
    {
        return Err(invalid(
            "chart.metadata.type must be application or library".into(),
        ));
    }
    for dep in &metadata.dependencies {
        if dep.name.is_empty() {
            return Err(invalid("dependencies must have a name".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helm follows symlinks to files and directories inside a chart; the directory walk tells
    /// entries apart from the listing and stats only the links. A file larger than the read
    /// buffer's first size comes back whole, and a FIFO is refused as Helm refuses it.
    #[cfg(unix)]
    #[test]
    fn many_files_are_read_by_two_threads_with_the_sequential_walks_result() {
        let root = std::env::temp_dir().join(format!("keelson-chart-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let build = |root: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(root.join("templates"))?;
            std::fs::write(
                root.join("Chart.yaml"),
                "apiVersion: v2\nname: c\nversion: 1.0.0\n",
            )?;
            for index in 0..3 * FILES_WORTH_A_READER {
                let text = format!("n: {index}\n{}", "#".repeat(index * 37));
                std::fs::write(root.join(format!("templates/t{index:03}.yaml")), text)?;
            }
            Ok(())
        };
        if let Err(err) = build(&root) {
            panic!(
                "cannot build the test chart under {}: {err}",
                root.display()
            );
        }
        let loaded = load_dir(&root);
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => panic!("the chart must load: {err}"),
        };
        assert_eq!(loaded.templates.len(), 3 * FILES_WORTH_A_READER);
        for (index, file) in loaded.templates.iter().enumerate() {
            assert_eq!(file.name, format!("templates/t{index:03}.yaml"));
            let text = format!("n: {index}\n{}", "#".repeat(index * 37));
            assert_eq!(file.data, text.as_bytes());
        }

        // A file that cannot be read (reading /proc/self/mem at offset 0 fails with EIO)
        // comes before an irregular file in walk order: its error is the one reported, as
        // Helm's sequential walk would.
        let unreadable = root.join("templates/t010.yaml");
        let fifo = root.join("templates/t900.yaml");
        let fifo_c =
            std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let made = std::fs::remove_file(&unreadable)
            .and_then(|()| std::os::unix::fs::symlink("/proc/self/mem", &unreadable));
        if let Err(err) = made {
            panic!("cannot make the unreadable file: {err}");
        }
        // SAFETY: mkfifo reads the NUL-terminated path during the call.
        assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0, "mkfifo");
        let first = load_dir(&root).err().map(|e| e.to_string());
        // Without the unreadable file, the irregular one is the error.
        let _ = std::fs::remove_file(&unreadable);
        let second = load_dir(&root).err().map(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            first
                .as_deref()
                .is_some_and(|e| e.contains("t010.yaml") && !e.contains("irregular")),
            "{first:?}"
        );
        assert!(
            second
                .as_deref()
                .is_some_and(|e| e.contains("t900.yaml") && e.contains("irregular")),
            "{second:?}"
        );
    }

    #[test]
    fn chart_directories_follow_symlinks_and_read_whole_files() {
        let root = std::env::temp_dir().join(format!("keelson-chart-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let chart = root.join("chart");
        let elsewhere = root.join("elsewhere");
        let made = std::fs::create_dir_all(chart.join("templates"))
            .and_then(|()| std::fs::create_dir_all(&elsewhere))
            .and_then(|()| {
                std::fs::write(
                    chart.join("Chart.yaml"),
                    "apiVersion: v2\nname: c\nversion: 1.0.0\n",
                )
            })
            .and_then(|()| std::fs::write(chart.join("templates/a.yaml"), "a: 1\n"))
            .and_then(|()| std::os::unix::fs::symlink("a.yaml", chart.join("templates/b.yaml")))
            .and_then(|()| std::fs::write(elsewhere.join("big.txt"), vec![b'x'; 200_000]))
            .and_then(|()| std::os::unix::fs::symlink(&elsewhere, chart.join("files")));
        if let Err(err) = made {
            panic!(
                "cannot build the test chart under {}: {err}",
                root.display()
            );
        }
        let loaded = load_dir(&chart);
        let _ = std::fs::remove_dir_all(&root);
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => panic!("the chart must load: {err}"),
        };
        let templates: Vec<(&str, &[u8])> = loaded
            .templates
            .iter()
            .map(|f| (f.name.as_str(), f.data.as_slice()))
            .collect();
        assert_eq!(
            templates,
            vec![
                ("templates/a.yaml", &b"a: 1\n"[..]),
                ("templates/b.yaml", &b"a: 1\n"[..])
            ]
        );
        let big = loaded.files.iter().find(|f| f.name == "files/big.txt");
        assert_eq!(big.map(|f| f.data.len()), Some(200_000));

        let fifo_root =
            std::env::temp_dir().join(format!("keelson-chart-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fifo_root);
        let made = std::fs::create_dir_all(&fifo_root).and_then(|()| {
            std::fs::write(
                fifo_root.join("Chart.yaml"),
                "apiVersion: v2\nname: c\nversion: 1.0.0\n",
            )
        });
        if let Err(err) = made {
            panic!("cannot build the FIFO chart: {err}");
        }
        let fifo = fifo_root.join("pipe");
        let fifo_c =
            std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: mkfifo reads the NUL-terminated path during the call.
        assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0, "mkfifo");
        let refused = load_dir(&fifo_root).err().map(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&fifo_root);
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("irregular file")),
            "{refused:?}"
        );
    }

    fn file(name: &str, data: &str) -> ChartFile {
        ChartFile {
            name: name.to_string(),
            data: data.as_bytes().to_vec(),
        }
    }

    /// fixtures/render/values-documents/<case>: multi-document values.yaml and `-f` files, and
    /// what helm 3 (first document) and helm 4 (every document merged) render or say (recorded
    /// with the real helms by scripts/regen-values-documents).
    #[test]
    fn values_documents_match_real_helm() {
        use crate::render::release::{RenderSettings, render_chart, template_output};
        use crate::values::ValueOptions;
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/render/values-documents");
        let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        assert!(dirs.len() >= 5, "cases missing under {}", root.display());
        let mut failures = Vec::new();
        for dir in &dirs {
            for (flavor, prefix) in [
                (HelmFlavor::Helm3, "expected"),
                (HelmFlavor::Helm4, "expected-helm4"),
            ] {
                let read = |name: String| std::fs::read_to_string(dir.join(name)).ok();
                let expected = match (
                    read(format!("{prefix}.txt")),
                    read(format!("{prefix}-error.txt")),
                ) {
                    (Some(stdout), None) => Ok(stdout),
                    (None, Some(error)) => Err(error.trim_end().to_string()),
                    _ => panic!("{}: no single {prefix} file", dir.display()),
                };
                let user_file = dir.join("user.yaml");
                let options = ValueOptions {
                    value_files: vec![user_file.clone()]
                        .into_iter()
                        .filter(|p| p.exists())
                        .collect(),
                    ..Default::default()
                };
                let got = (|| -> Result<String, String> {
                    let chart = load_as(&dir.join("chart"), flavor).map_err(|e| e.to_string())?;
                    let user = match flavor {
                        HelmFlavor::Helm3 => options.merge(),
                        HelmFlavor::Helm4 => options.merge_all_documents(),
                    }
                    // helm ran in the case directory with `-f user.yaml`.
                    .map_err(|e| {
                        e.to_string()
                            .replace(&user_file.display().to_string(), "user.yaml")
                    })?;
                    let settings = RenderSettings {
                        release_name: "rel".into(),
                        namespace: "demo".into(),
                        revision: 1,
                        flavor,
                        ..Default::default()
                    };
                    let rendered =
                        render_chart(&chart, &user, &settings).map_err(|e| e.to_string())?;
                    template_output(&rendered, &Default::default())
                })();
                if got != expected {
                    failures.push(format!(
                        "{} {flavor:?}:\nwant {expected:?}\ngot  {got:?}",
                        dir.display()
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// fixtures/render/values-errors/<case>: a malformed values.yaml and what helm 3 and helm 4
    /// say about it (recorded with the real helms by scripts/regen-values-errors).
    #[test]
    fn values_yaml_errors_match_real_helm() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/render/values-errors");
        let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        assert!(dirs.len() > 5, "cases missing under {}", root.display());
        let mut failures = Vec::new();
        for dir in &dirs {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .unwrap_or_else(|e| panic!("cannot read {}/{name}: {e}", dir.display()))
            };
            let values = read("values.yaml");
            for (flavor, expected) in [
                (HelmFlavor::Helm3, "expected-error.txt"),
                (HelmFlavor::Helm4, "expected-helm4-error.txt"),
            ] {
                let expected = std::fs::read_to_string(dir.join(expected)).ok();
                let loaded = load_files_as(
                    vec![
                        file("Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n"),
                        file("values.yaml", &values),
                        file("templates/t.yaml", "a: 1\n"),
                    ],
                    "c",
                    flavor,
                );
                // A case one helm accepts has no expected file for it (multi-document
                // values.yaml: helm 3 reads only the first document).
                let (expected, got) = match (expected, loaded) {
                    (None, Ok(_)) => continue,
                    (None, Err(error)) => (
                        format!("no error ({flavor:?} accepts it)"),
                        error.to_string(),
                    ),
                    (Some(expected), Ok(_)) => (expected, format!("loaded ({flavor:?})")),
                    (Some(expected), Err(error)) => (expected, error.to_string()),
                };
                if expected.trim_end() != got {
                    failures.push(format!(
                        "{}:\nwant {}\ngot  {got}",
                        dir.display(),
                        expected.trim_end()
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn sorts_files_like_helms_loader() {
        let chart = load_files(
            vec![
                file("Chart.yaml", "apiVersion: v2\nname: top\nversion: 1.0.0\n"),
                file("values.yaml", "a: 1\n"),
                file("templates/x.yaml", "x"),
                file("files/a.txt", "A"),
                file("charts/sub/Chart.yaml", "name: sub\nversion: 0.1.0\n"),
                file("charts/sub/templates/y.yaml", "y"),
                file("charts/.hidden/Chart.yaml", "broken"),
            ],
            "top",
        );
        let chart = match chart {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(chart.name(), "top");
        assert_eq!(chart.templates.len(), 1);
        assert_eq!(chart.files.len(), 1);
        assert_eq!(chart.dependencies.len(), 1);
        assert_eq!(chart.dependencies[0].metadata.api_version, "v1");
        assert!(chart.values.get("a").is_some_and(|v| v.is_f64()));
    }

    #[test]
    fn missing_or_bad_metadata_is_a_clear_error() {
        let no_chart = load_files(vec![file("values.yaml", "")], "c").err();
        assert!(no_chart.is_some_and(|e| e.to_string().contains("Chart.yaml file is missing")));
        let bad_version = load_files(
            vec![file(
                "Chart.yaml",
                "apiVersion: v2\nname: c\nversion: abc\n",
            )],
            "c",
        )
        .err();
        assert!(bad_version.is_some_and(|e| e.to_string().contains("is invalid")));
    }

    #[test]
    fn numeric_versions_become_strings() {
        let chart = load_files(
            vec![file(
                "Chart.yaml",
                "apiVersion: v2\nname: c\nversion: 1.0.0\nappVersion: 1.10\n",
            )],
            "c",
        );
        assert!(chart.is_ok_and(|c| c.metadata.app_version == "1.1"));
    }

    #[test]
    fn archives_load_like_directories() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in [
            ("c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\n"),
            ("c/templates/a.yaml", "a: 1\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            assert!(
                builder
                    .append_data(&mut header, name, data.as_bytes())
                    .is_ok()
            );
        }
        let bytes = builder
            .into_inner()
            .and_then(|gz| gz.finish())
            .unwrap_or_default();
        let chart = load_archive(&bytes, "c.tgz");
        assert!(chart.is_ok_and(|c| c.templates.len() == 1 && c.name() == "c"));
        assert!(load_archive(b"not an archive", "x.tgz").is_err());
    }

    fn archive_of(files: &[(&str, usize)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, size) in files {
            let data = if *name == "c/Chart.yaml" {
                b"apiVersion: v2\nname: c\nversion: 1.0.0\n".to_vec()
            } else {
                vec![b'a'; *size]
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            assert!(builder.append_data(&mut header, name, &data[..]).is_ok());
        }
        builder
            .into_inner()
            .and_then(|gz| gz.finish())
            .unwrap_or_default()
    }

    /// Issue 13 item 11: helm 3.17.3 prints these words for the same archives.
    #[test]
    fn archives_are_capped_like_helm() {
        let one_big = archive_of(&[("c/Chart.yaml", 0), ("c/big.txt", 6_000_000)]);
        let err = load_archive(&one_big, "c.tgz").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "c.tgz: decompressed chart file \"c/big.txt\" is larger than the maximum file size 5242880"
            )
        );
        let names: Vec<String> = (0..21).map(|i| format!("c/f{i}.txt")).collect();
        let mut many: Vec<(&str, usize)> = vec![("c/Chart.yaml", 0)];
        many.extend(names.iter().map(|n| (n.as_str(), 5 * 1024 * 1024)));
        let err = load_archive(&archive_of(&many), "c.tgz")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("c.tgz: decompressed chart is larger than the maximum size 104857600")
        );
        // Right at the per-file cap is fine.
        let at_cap = archive_of(&[("c/Chart.yaml", 0), ("c/f.txt", 5 * 1024 * 1024)]);
        assert!(load_archive(&at_cap, "c.tgz").is_ok());
    }
}
