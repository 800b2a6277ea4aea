//! Renders a chart the way `helm install`/`helm template` do: dependencies, values, the data
//! each template sees, the engine, and the sorted manifest, hooks and notes a release stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::render::chart::{Chart, ChartFile, Metadata};
use crate::render::dependencies::{check_dependencies, process_dependencies};
use crate::render::engine::{self, Lookup, RenderOptions, TemplateSource};
use crate::render::manifest::{self, Hook, KindOrder, Manifest};
use crate::render::objects::{
    ApiVersions, Capabilities, ChartObject, Files, KubeVersion, chart_map, default_kube_version,
};
use crate::render::schema;
use crate::values::{self, Values};
use gocompat::semver::is_compatible_range;
use gotemplate::Value;

/// Which Helm's behaviour to reproduce where helm 3.17 and helm 4.1 differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HelmFlavor {
    #[default]
    Helm3,
    Helm4,
}

impl HelmFlavor {
    /// How this Helm's values coalescing treats a user `null` over a `null` default.
    pub fn null_over_null(self) -> values::NullOverNull {
        match self {
            HelmFlavor::Helm3 => values::NullOverNull::Delete,
            HelmFlavor::Helm4 => values::NullOverNull::Keep,
        }
    }
}

/// The release-level inputs of a render (what `helm template` flags and a release record give).
#[derive(Clone, Default)]
pub struct RenderSettings {
    pub release_name: String,
    pub namespace: String,
    pub revision: i64,
    pub is_upgrade: bool,
    /// `--kube-version`; `None` is Helm's default for offline rendering.
    pub kube_version: Option<String>,
    /// `--api-versions`, added to Helm's defaults.
    pub api_versions: Vec<String>,
    pub flavor: HelmFlavor,
    /// Answers `lookup`; `None` renders offline like `helm template`.
    pub lookup: Option<Arc<dyn Lookup>>,
    /// `--skip-schema-validation`.
    pub skip_schema_validation: bool,
    /// Steps, output and time the templates may use.
    pub budget: gotemplate::RenderBudget,
}

/// What a render produces: what a release record stores, plus the CRDs `--include-crds` prints.
#[derive(Clone, Debug, Default)]
pub struct RenderedRelease {
    /// The manifest string a release stores: `---\n# Source: PATH\nDOC\n` per document, in
    /// install order, hooks excluded.
    pub manifest: String,
    /// The sorted non-hook documents the manifest is made of.
    pub manifests: Vec<Manifest>,
    /// Hooks, sorted by kind.
    pub hooks: Vec<Hook>,
    /// The root chart's rendered NOTES.txt.
    pub notes: String,
    /// `crds/` files of the chart tree: (path shown in `# Source:`, content).
    pub crds: Vec<(String, String)>,
    /// The values the templates saw (chart defaults coalesced with the user's values).
    pub values: Values,
}

/// Why a render failed; the message is Helm's wording where Helm has one.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("{0}")]
    Chart(String),
    #[error(transparent)]
    Values(#[from] values::ValuesError),
    #[error(
        "values don't meet the specifications of the schema(s) in the following chart(s):\n{0}"
    )]
    Schema(String),
    #[error(transparent)]
    Template(#[from] engine::RenderError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("invalid release record: {0}")]
    Record(String),
    #[error(
        "chart requires kubeVersion: {required} which is incompatible with Kubernetes {actual}"
    )]
    KubeVersion { required: String, actual: String },
}

impl RenderFailure {
    /// Whether Helm had already created the release object when this failed (template
    /// execution and manifest errors); `helm template` then adds a hint about `--debug`.
    pub fn after_release_created(&self) -> bool {
        matches!(
            self,
            RenderFailure::Template(_)
                | RenderFailure::Manifest(_)
                | RenderFailure::KubeVersion { .. }
        )
    }
}

/// Renders `chart` with the user's values as `helm install` (or `template`) does.
pub fn render_chart(
    chart: &Chart,
    user_values: &Values,
    settings: &RenderSettings,
) -> Result<RenderedRelease, RenderFailure> {
    render_owned_chart(chart.clone(), user_values, settings)
}

/// [`render_chart`] for a caller that has no further use for the chart: a render changes
/// its copy (subcharts enabled or not, imported values), and copying every file of a chart
/// is not free (vault's 390 KB cost ~100 fresh pages).
pub fn render_owned_chart(
    mut chart: Chart,
    user_values: &Values,
    settings: &RenderSettings,
) -> Result<RenderedRelease, RenderFailure> {
    if chart.is_library() {
        return Err(RenderFailure::Chart(
            "library charts are not installable".to_string(),
        ));
    }
    if !chart.metadata.dependencies.is_empty() {
        check_dependencies(&chart).map_err(RenderFailure::Chart)?;
    }
    validate_release_name(&settings.release_name)?;
    let null_over_null = settings.flavor.null_over_null();
    process_dependencies(&mut chart, user_values, null_over_null)?;

    let root_path = chart.name().to_string();
    let mut sources = Vec::new();
    template_sources(&mut chart, &root_path, &mut sources);
    let options = RenderOptions {
        range_over_int: settings.flavor == HelmFlavor::Helm4,
        helm4_functions: settings.flavor == HelmFlavor::Helm4,
        helm4_wording: settings.flavor == HelmFlavor::Helm4,
        lookup: settings.lookup.clone(),
        budget: settings.budget,
        ..RenderOptions::default()
    };
    // The templates are parsed while the values are coalesced and checked (engine docs).
    let prepare = || -> Result<(BTreeMap<String, Value>, Values), RenderFailure> {
        let kube_text = settings
            .kube_version
            .clone()
            .unwrap_or_else(|| default_kube_version(settings.flavor).to_string());
        let kube_version = KubeVersion::parse(&kube_text, settings.flavor)
            .ok_or_else(|| RenderFailure::Chart(format!("invalid kube version {kube_text:?}")))?;
        let values = values::coalesce_values(&chart, user_values, null_over_null)?;
        if !settings.skip_schema_validation {
            schema::validate_chart_tree(&chart, &values).map_err(RenderFailure::Schema)?;
        }
        if !chart.metadata.kube_version.is_empty()
            && !is_compatible_range(&chart.metadata.kube_version, &kube_version.version)
        {
            return Err(RenderFailure::KubeVersion {
                required: chart.metadata.kube_version.clone(),
                actual: kube_version.version.clone(),
            });
        }
        let capabilities = Value::Object(Arc::new(Capabilities {
            api_versions: Arc::new(ApiVersions::defaults_with(
                settings.flavor,
                &settings.api_versions,
            )),
            kube_version: Arc::new(kube_version),
            flavor: settings.flavor,
        }));
        let release = Value::map([
            (
                "Name".to_string(),
                Value::from(settings.release_name.clone()),
            ),
            (
                "Namespace".to_string(),
                Value::from(settings.namespace.clone()),
            ),
            ("IsUpgrade".to_string(), Value::Bool(settings.is_upgrade)),
            ("IsInstall".to_string(), Value::Bool(!settings.is_upgrade)),
            ("Revision".to_string(), Value::Int(settings.revision)),
            ("Service".to_string(), Value::from("Helm")),
        ]);
        let shared = SharedData {
            top_values: Value::from_json_map(&values),
            release,
            capabilities,
            flavor: settings.flavor,
        };
        let mut dots = BTreeMap::new();
        collect_templates(&chart, None, &root_path, &shared, &mut dots);
        Ok((dots, values))
    };
    // Each template's documents are read while the next templates execute.
    let mut read_files = HashMap::new();
    let (mut rendered, coalesced) =
        engine::render_with_data(sources, &options, prepare, |name, output| {
            if !name.ends_with("NOTES.txt")
                && let Some(read) = manifest::read_file(name, output)
            {
                read_files.insert(name.to_string(), read);
            }
        })??;

    let notes_key = format!("{root_path}/templates/NOTES.txt");
    let notes = rendered.get(&notes_key).cloned().unwrap_or_default();
    rendered.retain(|name, _| !name.ends_with("NOTES.txt"));

    let order = match settings.flavor {
        HelmFlavor::Helm3 => KindOrder::Helm3,
        HelmFlavor::Helm4 => KindOrder::Helm4,
    };
    let sorted = manifest::sort_read_manifests(&rendered, &mut read_files, order)?;
    // Sized once: a chart with CRDs as templates makes a manifest of hundreds of KiB, and each
    // doubling of a growing string copies it into fresh pages.
    let mut manifest_text = String::with_capacity(
        sorted
            .manifests
            .iter()
            .map(|m| document_len(&m.name, &m.content))
            .sum(),
    );
    for m in &sorted.manifests {
        push_document(&mut manifest_text, &m.name, &m.content);
    }
    let crds = chart
        .crd_objects(&root_path)
        .into_iter()
        .map(|(path, file)| (path, String::from_utf8_lossy(&file.data).into_owned()))
        .collect();
    Ok(RenderedRelease {
        manifest: manifest_text,
        manifests: sorted.manifests,
        hooks: sorted.hooks,
        notes,
        crds,
        values: coalesced,
    })
}

/// What every template of a render shares.
struct SharedData {
    top_values: Value,
    release: Value,
    capabilities: Value,
    flavor: HelmFlavor,
}

/// `chartutil.ValidateReleaseName`: a DNS-1123 subdomain of at most 53 characters.
fn validate_release_name(name: &str) -> Result<(), RenderFailure> {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes.iter().all(|b| edge(b) || *b == b'-')
    };
    if !name.is_empty() && name.len() <= 53 && name.split('.').all(label_ok) {
        return Ok(());
    }
    Err(RenderFailure::Chart(format!(
        "release name {name:?}: invalid release name, must match regex ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ and the length must not be longer than 53"
    )))
}

/// Helm's `recAllTpls`: the data each template of the tree sees, built top-down for `.Values`
/// and bottom-up for `.Subcharts`. Returns this chart's data map.
fn collect_templates(
    chart: &Chart,
    parent_values: Option<&Value>,
    full_path: &str,
    shared: &SharedData,
    out: &mut BTreeMap<String, Value>,
) -> Value {
    let own_values = match parent_values {
        None => shared.top_values.clone(),
        Some(parent) => match parent.as_map().and_then(|m| m.get(chart.name())) {
            Some(Value::Map(section)) => Value::Map(section.clone()),
            _ => Value::map(Vec::new()),
        },
    };
    let mut subcharts = BTreeMap::new();
    for dep in &chart.dependencies {
        let child_path = subchart_path(full_path, dep);
        let child = collect_templates(dep, Some(&own_values), &child_path, shared, out);
        subcharts.insert(dep.name().to_string(), child);
    }
    let files = chart
        .files
        .iter()
        .map(|f| (f.name.clone(), Arc::new(f.data.clone())))
        .collect();
    let mut data = BTreeMap::new();
    let is_root = parent_values.is_none();
    let chart_value = match shared.flavor {
        HelmFlavor::Helm3 => Value::Object(Arc::new(ChartObject {
            metadata: chart.metadata.clone(),
            is_root,
        })),
        HelmFlavor::Helm4 => chart_map(&chart.metadata, is_root),
    };
    data.insert("Chart".to_string(), chart_value);
    data.insert(
        "Files".to_string(),
        Value::Object(Arc::new(Files::new(files))),
    );
    data.insert("Release".to_string(), shared.release.clone());
    data.insert("Capabilities".to_string(), shared.capabilities.clone());
    data.insert("Values".to_string(), own_values);
    data.insert("Subcharts".to_string(), Value::Map(Arc::new(subcharts)));
    let base_path = format!("{full_path}/templates");
    for template in &chart.templates {
        // A library chart's partials are all Helm renders (and parses) of it.
        if chart.is_library() && !engine::is_partial(&template.name) {
            continue;
        }
        let name = format!("{full_path}/{}", template.name);
        let mut dot = data.clone();
        dot.insert(
            "Template".to_string(),
            Value::map([
                ("Name".to_string(), Value::from(name.clone())),
                ("BasePath".to_string(), Value::from(base_path.clone())),
            ]),
        );
        out.insert(name, Value::Map(Arc::new(dot)));
    }
    Value::Map(Arc::new(data))
}

/// Where a subchart's templates are named from: `PARENT/charts/NAME`.
fn subchart_path(full_path: &str, dep: &Chart) -> String {
    format!("{full_path}/charts/{}", dep.name())
}

/// The names and sources of the templates [`collect_templates`] gives data to. The sources
/// are moved out of this render's own copy of the chart: from here on only the templates'
/// names are read from it.
fn template_sources(chart: &mut Chart, full_path: &str, out: &mut Vec<TemplateSource>) {
    for dep in &mut chart.dependencies {
        let path = subchart_path(full_path, dep);
        template_sources(dep, &path, out);
    }
    let is_library = chart.is_library();
    for template in &mut chart.templates {
        if is_library && !engine::is_partial(&template.name) {
            continue;
        }
        let text = match String::from_utf8(std::mem::take(&mut template.data)) {
            Ok(text) => text,
            Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
        };
        out.push(TemplateSource {
            name: format!("{full_path}/{}", template.name),
            text,
        });
    }
}

/// Options of `helm template`'s output that do not change rendering.
#[derive(Clone, Debug, Default)]
pub struct TemplateOutput {
    pub include_crds: bool,
    pub skip_tests: bool,
    pub no_hooks: bool,
    pub show_only: Vec<String>,
}

/// What `helm template` prints on stdout for a rendered release.
pub fn template_output(
    rendered: &RenderedRelease,
    options: &TemplateOutput,
) -> Result<String, String> {
    let crds: &[(String, String)] = if options.include_crds {
        &rendered.crds
    } else {
        &[]
    };
    let hooks: Vec<&Hook> = if options.no_hooks {
        Vec::new()
    } else {
        rendered
            .hooks
            .iter()
            .filter(|hook| !(options.skip_tests && hook.events.iter().any(|e| e == "test")))
            .collect()
    };
    // Written once into a string of its final size: the output of a chart with CRDs is
    // hundreds of KiB, and copies of it (or doublings of a growing string) cost a page fault
    // per 4 KiB.
    let mut out = String::with_capacity(
        crds.iter()
            .map(|(path, content)| document_len(path, content))
            .sum::<usize>()
            + rendered.manifest.len()
            + 1
            + hooks
                .iter()
                .map(|hook| document_len(&hook.path, &hook.manifest))
                .sum::<usize>(),
    );
    for (path, content) in crds {
        push_document(&mut out, path, content);
    }
    out.push_str(&rendered.manifest);
    // Helm trims the CRDs and manifest together, then ends them with one newline.
    let end = out.trim_end().len();
    out.truncate(end);
    let start = out.len() - out.trim_start().len();
    out.drain(..start);
    out.push('\n');
    for hook in hooks {
        push_document(&mut out, &hook.path, &hook.manifest);
    }
    if options.show_only.is_empty() {
        return Ok(out);
    }
    let documents = manifest::split_manifests(&out);
    let mut selected = Vec::new();
    for wanted in &options.show_only {
        let wanted = wanted.replace('\\', "/");
        let mut missing = true;
        for doc in &documents {
            let Some(path) = source_path(doc) else {
                continue;
            };
            if crate::render::helmignore::go_match(&wanted, path).unwrap_or(false) {
                selected.push(doc.as_str());
                missing = false;
            }
        }
        if missing {
            return Err(format!("could not find template {wanted} in chart"));
        }
    }
    Ok(selected
        .into_iter()
        .map(|doc| format!("---\n{doc}\n"))
        .collect())
}

const SOURCE_HEADER: &str = "---\n# Source: ";

/// How long [`push_document`] makes a string.
fn document_len(path: &str, text: &str) -> usize {
    SOURCE_HEADER.len() + path.len() + 1 + text.len() + 1
}

/// Appends `---\n# Source: PATH\nTEXT\n`, one document of a manifest as Helm joins them.
fn push_document(out: &mut String, path: &str, text: &str) {
    out.push_str(SOURCE_HEADER);
    out.push_str(path);
    out.push('\n');
    out.push_str(text);
    out.push('\n');
}

/// The path after the chart name in a document's `# Source: chart/PATH` line (Helm's regex
/// `# Source: [^/]+/(.+)`).
fn source_path(doc: &str) -> Option<&str> {
    let start = doc.find("# Source: ")? + "# Source: ".len();
    let rest = &doc[start..];
    let slash = rest.find('/')?;
    let after = &rest[slash + 1..];
    let line = after.split('\n').next().unwrap_or(after);
    if line.is_empty() { None } else { Some(line) }
}

/// Builds a chart from a release record's `chart` JSON (metadata, templates, values, schema,
/// files; base64 data). Subcharts are not stored in records, so none are loaded.
pub fn chart_from_record(record_chart: &Json) -> Result<Chart, RenderFailure> {
    use base64::Engine as _;
    let bad = |m: String| RenderFailure::Record(m);
    let metadata: Metadata = serde_json::from_value(
        record_chart
            .get("metadata")
            .cloned()
            .ok_or_else(|| bad("chart has no metadata".into()))?,
    )
    .map_err(|e| bad(format!("chart metadata: {e}")))?;
    let decode_files = |key: &str| -> Result<Vec<ChartFile>, RenderFailure> {
        let Some(items) = record_chart.get(key).and_then(Json::as_array) else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .map(|item| {
                let name = item
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("chart {key} entry without a name")))?;
                let data = match item.get("data") {
                    Some(Json::String(text)) => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| bad(format!("chart file {name}: {e}")))?,
                    _ => Vec::new(),
                };
                Ok(ChartFile {
                    name: name.to_string(),
                    data,
                })
            })
            .collect()
    };
    let values = match record_chart.get("values") {
        Some(Json::Object(map)) => json_numbers_as_floats(Json::Object(map.clone())),
        _ => Json::Object(Values::new()),
    };
    let schema = match record_chart.get("schema") {
        Some(Json::String(text)) if !text.is_empty() => Some(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| bad(format!("chart schema: {e}")))?,
        ),
        _ => None,
    };
    Ok(Chart {
        metadata,
        values: match values {
            Json::Object(map) => map,
            _ => Values::new(),
        },
        schema,
        templates: decode_files("templates")?,
        files: decode_files("files")?,
        dependencies: Vec::new(),
    })
}

/// JSON decoded into Go's `interface{}` holds only float64 numbers.
pub fn json_numbers_as_floats(value: Json) -> Json {
    match value {
        Json::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Json::Array(items) => Json::Array(items.into_iter().map(json_numbers_as_floats).collect()),
        Json::Object(map) => Json::Object(
            map.into_iter()
                .map(|(k, v)| (k, json_numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Re-renders a release from its record: the stored chart with the stored user config.
pub fn render_from_record(
    record_chart: &Json,
    record_config: &Json,
    settings: &RenderSettings,
) -> Result<RenderedRelease, RenderFailure> {
    render_from_record_with_subcharts(record_chart, record_config, settings, &[])
}

/// [`render_from_record`] with the subcharts the record does not store, as the loader would
/// have read them from `charts/` (fetched again by `subcharts`).
pub fn render_from_record_with_subcharts(
    record_chart: &Json,
    record_config: &Json,
    settings: &RenderSettings,
    subcharts: &[Chart],
) -> Result<RenderedRelease, RenderFailure> {
    let mut chart = chart_from_record(record_chart)?;
    chart.dependencies = subcharts.to_vec();
    let config = match json_numbers_as_floats(record_config.clone()) {
        Json::Object(map) => map,
        Json::Null => Values::new(),
        _ => return Err(RenderFailure::Record("config is not a map".into())),
    };
    render_chart(&chart, &config, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_files(files: &[(&str, &str)]) -> Result<RenderedRelease, String> {
        let files = files
            .iter()
            .map(|(name, text)| crate::render::chart::ChartFile {
                name: name.to_string(),
                data: text.as_bytes().to_vec(),
            })
            .collect();
        let chart = crate::render::chart::load_files_as(files, "c", HelmFlavor::Helm3)
            .map_err(|e| e.to_string())?;
        let settings = RenderSettings {
            release_name: "rel".into(),
            namespace: "ns".into(),
            revision: 1,
            is_upgrade: false,
            kube_version: None,
            api_versions: Vec::new(),
            flavor: HelmFlavor::Helm3,
            lookup: None,
            skip_schema_validation: false,
            budget: Default::default(),
        };
        render_chart(&chart, &Values::new(), &settings).map_err(|e| e.to_string())
    }

    /// Documents are read while later templates execute; the errors still come out as in
    /// Helm, which executes every template before it reads any document.
    #[test]
    fn manifests_read_during_execution_give_helms_errors() {
        const CHART_YAML: &str = "apiVersion: v2\nname: c\nversion: 0.1.0\n";
        // b executes before a (reverse lexical order); its output is not YAML, then a fails.
        let exec_error = render_files(&[
            ("Chart.yaml", CHART_YAML),
            ("templates/a.yaml", "{{ fail \"boom\" }}"),
            ("templates/b.yaml", "kind: [\n"),
        ]);
        assert_eq!(
            exec_error.err().as_deref(),
            Some("execution error at (c/templates/a.yaml:1:3): boom")
        );
        // Both outputs unreadable: the first in file order (a) is named.
        let read_error = render_files(&[
            ("Chart.yaml", CHART_YAML),
            ("templates/a.yaml", "kind: [\n"),
            ("templates/b.yaml", "kind: {\n"),
        ])
        .err()
        .unwrap_or_default();
        assert!(
            read_error.starts_with("YAML parse error on c/templates/a.yaml:"),
            "{read_error}"
        );
        let rendered = render_files(&[
            ("Chart.yaml", CHART_YAML),
            (
                "templates/a.yaml",
                "kind: A\nmetadata:\n  name: a\n---\nkind: B\n",
            ),
            (
                "templates/b.yaml",
                "kind: C\nmetadata:\n  annotations:\n    helm.sh/hook: test\n",
            ),
        ]);
        let Ok(rendered) = rendered else {
            panic!("a valid chart renders: {rendered:?}")
        };
        let kinds: Vec<&str> = rendered.manifests.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["A", "B"]);
        assert_eq!(rendered.hooks.len(), 1);
    }

    #[test]
    fn release_names_like_helm() {
        assert!(validate_release_name("rel").is_ok());
        assert!(validate_release_name("a.b-c.d1").is_ok());
        for bad in ["", "Bad_Name", "-a", "a-", "a..b", &"a".repeat(54)] {
            assert!(validate_release_name(bad).is_err(), "{bad}");
        }
        let message = validate_release_name("Bad_Name")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            r#"release name "Bad_Name": invalid release name, must match regex ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ and the length must not be longer than 53"#
        );
    }

    #[test]
    fn show_only_source_path() {
        assert_eq!(
            source_path("# Source: c/templates/a.yaml\nkind: A"),
            Some("templates/a.yaml")
        );
        assert_eq!(source_path("kind: A"), None);
    }

    #[test]
    fn template_output_layout() {
        let rendered = RenderedRelease {
            manifest: "---\n# Source: c/templates/a.yaml\nkind: A\n".into(),
            hooks: vec![Hook {
                name: "t".into(),
                kind: "Pod".into(),
                path: "c/templates/test.yaml".into(),
                manifest: "kind: Pod".into(),
                events: vec!["test".into()],
                last_run: Default::default(),
                weight: 0,
                delete_policies: vec![],
            }],
            ..Default::default()
        };
        let all = template_output(&rendered, &TemplateOutput::default()).unwrap_or_default();
        assert_eq!(
            all,
            "---\n# Source: c/templates/a.yaml\nkind: A\n---\n# Source: c/templates/test.yaml\nkind: Pod\n"
        );
        let skip = TemplateOutput {
            skip_tests: true,
            ..Default::default()
        };
        assert_eq!(
            template_output(&rendered, &skip).unwrap_or_default(),
            "---\n# Source: c/templates/a.yaml\nkind: A\n"
        );
        let only = TemplateOutput {
            show_only: vec!["templates/a.yaml".into()],
            ..Default::default()
        };
        assert_eq!(
            template_output(&rendered, &only).unwrap_or_default(),
            "---\n# Source: c/templates/a.yaml\nkind: A\n"
        );
        let missing = TemplateOutput {
            show_only: vec!["templates/nope.yaml".into()],
            ..Default::default()
        };
        assert!(template_output(&rendered, &missing).is_err());
    }
}
