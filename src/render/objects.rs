//! The Go objects Helm hands to templates: `.Files`, `.Capabilities` (with `APIVersions.Has`,
//! `KubeVersion`, `HelmVersion`) and `.Chart` (chart metadata plus `IsRoot`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::render::chart::{Dependency, Maintainer, Metadata};
use crate::render::release::HelmFlavor;
use gotemplate::{Object, Value};

/// The API versions helm 3.17.3 reports when it has no cluster (`helm template`), in its order.
const HELM3_DEFAULT_API_VERSIONS: &str =
    include_str!("../../fixtures/render/capabilities/helm3-api-versions.txt");

/// The same for helm 4.1.4.
const HELM4_DEFAULT_API_VERSIONS: &str =
    include_str!("../../fixtures/render/capabilities/helm4-api-versions.txt");

/// The Kubernetes version `helm template` assumes without `--kube-version`.
pub fn default_kube_version(flavor: HelmFlavor) -> &'static str {
    match flavor {
        HelmFlavor::Helm3 => "v1.32.0",
        HelmFlavor::Helm4 => "v1.35.0",
    }
}

/// `.Files`: the chart's non-template files (Go type `engine.files`, a `map[string][]byte`).
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: Arc<BTreeMap<String, Arc<Vec<u8>>>>,
}

impl Files {
    pub fn new(files: BTreeMap<String, Arc<Vec<u8>>>) -> Self {
        Files {
            files: Arc::new(files),
        }
    }

    fn get_text(&self, name: &str) -> String {
        self.files
            .get(name)
            .map(|data| String::from_utf8_lossy(data).into_owned())
            .unwrap_or_default()
    }

    fn glob(&self, pattern: &str) -> Files {
        let matched = self
            .files
            .iter()
            .filter(|(name, _)| glob_match(pattern, name))
            .map(|(name, data)| (name.clone(), data.clone()))
            .collect();
        Files::new(matched)
    }

    fn lines(&self, name: &str) -> Value {
        let Some(data) = self.files.get(name) else {
            return Value::list(Vec::new());
        };
        let mut text = String::from_utf8_lossy(data).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Value::list(text.split('\n').map(|line| Value::from(line.to_string())))
    }

    /// `AsConfig` / `AsSecrets`: base names to contents (or base64), as Helm's `toYAML`.
    fn as_yaml_map(&self, base64: bool) -> Result<Value, String> {
        if self.files.is_empty() {
            return Ok(Value::from(""));
        }
        let mut map = BTreeMap::new();
        for (name, data) in self.files.iter() {
            let base = name.rsplit('/').next().unwrap_or(name).to_string();
            let text = if base64 {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&***data)
            } else {
                String::from_utf8_lossy(data).into_owned()
            };
            map.insert(base, Value::from(text));
        }
        let to_yaml = to_yaml_function()
            .ok_or_else(|| "toYaml is not registered in the template engine".to_string())?;
        let rendered = to_yaml(&[Value::Map(Arc::new(map))])?;
        // Helm's toYAML trims the final newline, as the template function does.
        Ok(rendered)
    }
}

impl Object for Files {
    fn type_name(&self) -> &str {
        "engine.files"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "AsConfig" => Some(self.as_yaml_map(false).unwrap_or_default()),
            "AsSecrets" => Some(self.as_yaml_map(true).unwrap_or_default()),
            _ => None,
        }
    }

    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let one_string = |method: &str| -> Result<String, String> {
            match args {
                [Value::String(s)] => Ok(s.clone()),
                [other] => Err(format!(
                    "wrong type for value; expected string; got {}",
                    go_type_of(other)
                )),
                _ => Err(format!(
                    "wrong number of args for {method}: want 1 got {}",
                    args.len()
                )),
            }
        };
        Some(match name {
            "Get" => one_string("Get").map(|n| Value::from(self.get_text(&n))),
            "GetBytes" => one_string("GetBytes").map(|n| {
                Value::Bytes(
                    self.files
                        .get(&n)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Vec::new())),
                )
            }),
            "Glob" => one_string("Glob").map(|p| Value::Object(Arc::new(self.glob(&p)))),
            "Lines" => one_string("Lines").map(|n| self.lines(&n)),
            "AsConfig" | "AsSecrets" => {
                if args.is_empty() {
                    self.as_yaml_map(name == "AsSecrets")
                } else {
                    Err(format!(
                        "wrong number of args for {name}: want 0 got {}",
                        args.len()
                    ))
                }
            }
            _ => return None,
        })
    }

    fn to_go_string(&self) -> String {
        let entries: Vec<String> = self
            .files
            .iter()
            .map(|(k, v)| {
                let bytes: Vec<String> = v.iter().map(|b| b.to_string()).collect();
                format!("{k}:[{}]", bytes.join(" "))
            })
            .collect();
        format!("map[{}]", entries.join(" "))
    }

    fn to_serializable(&self) -> Value {
        Value::map(
            self.files
                .iter()
                .map(|(k, v)| (k.clone(), Value::Bytes(v.clone()))),
        )
    }
}

/// Helm's `toYaml`, looked up once from the engine's function registry.
fn to_yaml_function() -> Option<gotemplate::Func> {
    static TO_YAML: std::sync::OnceLock<Option<gotemplate::Func>> = std::sync::OnceLock::new();
    *TO_YAML.get_or_init(|| crate::render::engine::helm_function_registry().get("toYaml"))
}

fn go_type_of(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Object(_) => "struct",
    }
}

/// gobwas/glob with `/` as separator, as `.Files.Glob` uses: `*`, `**`, `?`, `[...]`, `{a,b}`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    expand_braces(pattern)
        .iter()
        .any(|alt| glob_from(&alt.chars().collect::<Vec<_>>(), 0, &name, 0))
}

fn expand_braces(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let Some(open) = chars.iter().position(|c| *c == '{') else {
        return vec![pattern.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    let mut splits = Vec::new();
    for (i, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => splits.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_string()];
    };
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut bounds = vec![open];
    bounds.extend(splits);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alt: String = chars[pair[0] + 1..pair[1]].iter().collect();
        out.extend(expand_braces(&format!("{prefix}{alt}{suffix}")));
    }
    out
}

fn glob_from(p: &[char], pi: usize, n: &[char], ni: usize) -> bool {
    let Some(&c) = p.get(pi) else {
        return ni == n.len();
    };
    match c {
        '*' => {
            let super_star = p.get(pi + 1) == Some(&'*');
            let next = if super_star { pi + 2 } else { pi + 1 };
            let mut k = ni;
            loop {
                if glob_from(p, next, n, k) {
                    return true;
                }
                match n.get(k) {
                    None => return false,
                    Some('/') if !super_star => return false,
                    Some(_) => k += 1,
                }
            }
        }
        '?' => matches!(n.get(ni), Some(ch) if *ch != '/') && glob_from(p, pi + 1, n, ni + 1),
        '[' => {
            let Some(&ch) = n.get(ni) else {
                return false;
            };
            let mut i = pi + 1;
            let negate = p.get(i) == Some(&'!');
            if negate {
                i += 1;
            }
            let mut found = false;
            while let Some(&cc) = p.get(i) {
                if cc == ']' {
                    break;
                }
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                    let hi = p[i + 2];
                    if cc <= ch && ch <= hi {
                        found = true;
                    }
                    i += 3;
                } else {
                    if cc == ch {
                        found = true;
                    }
                    i += 1;
                }
            }
            if p.get(i) != Some(&']') {
                return false;
            }
            found != negate && glob_from(p, i + 1, n, ni + 1)
        }
        '\\' => match p.get(pi + 1) {
            Some(lit) => n.get(ni) == Some(lit) && glob_from(p, pi + 2, n, ni + 1),
            None => false,
        },
        lit => n.get(ni) == Some(&lit) && glob_from(p, pi + 1, n, ni + 1),
    }
}

/// `.Capabilities.APIVersions` (`chartutil.VersionSet`).
#[derive(Debug, Clone)]
pub struct ApiVersions {
    versions: Vec<String>,
    flavor: HelmFlavor,
}

impl ApiVersions {
    /// Helm 3's offline defaults plus the `--api-versions` given, in that order.
    pub fn helm3_defaults_with(extra: &[String]) -> Self {
        Self::defaults_with(HelmFlavor::Helm3, extra)
    }

    /// The offline defaults of the given Helm plus the `--api-versions` given, in that order.
    pub fn defaults_with(flavor: HelmFlavor, extra: &[String]) -> Self {
        let defaults = match flavor {
            HelmFlavor::Helm3 => HELM3_DEFAULT_API_VERSIONS,
            HelmFlavor::Helm4 => HELM4_DEFAULT_API_VERSIONS,
        };
        let mut versions: Vec<String> = defaults
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        versions.extend(extra.iter().cloned());
        ApiVersions { versions, flavor }
    }

    pub fn has(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn as_list(&self) -> Value {
        Value::list(self.versions.iter().map(|v| Value::from(v.clone())))
    }
}

impl Object for ApiVersions {
    fn type_name(&self) -> &str {
        match self.flavor {
            HelmFlavor::Helm3 => "chartutil.VersionSet",
            HelmFlavor::Helm4 => "common.VersionSet",
        }
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name != "Has" {
            return None;
        }
        Some(match args {
            [Value::String(v)] => Ok(Value::Bool(self.has(v))),
            [other] => Err(format!(
                "wrong type for value; expected string; got {}",
                go_type_of(other)
            )),
            _ => Err(format!(
                "wrong number of args for Has: want 1 got {}",
                args.len()
            )),
        })
    }
    fn to_go_string(&self) -> String {
        format!("[{}]", self.versions.join(" "))
    }
    fn to_serializable(&self) -> Value {
        self.as_list()
    }
}

/// `.Capabilities.KubeVersion` (`chartutil.KubeVersion`): prints as its `Version`.
#[derive(Debug, Clone)]
pub struct KubeVersion {
    pub version: String,
    pub major: String,
    pub minor: String,
    pub flavor: HelmFlavor,
}

impl KubeVersion {
    /// Parses `--kube-version` as Helm does (`1.30.0` or `v1.30`); `None` when invalid.
    pub fn parse(text: &str, flavor: HelmFlavor) -> Option<Self> {
        let version = gocompat::semver::parse_version(text)?;
        Some(KubeVersion {
            version: format!("v{}.{}.{}", version.major, version.minor, version.patch),
            major: version.major.to_string(),
            minor: version.minor.to_string(),
            flavor,
        })
    }
}

impl Object for KubeVersion {
    fn type_name(&self) -> &str {
        match self.flavor {
            HelmFlavor::Helm3 => "chartutil.KubeVersion",
            HelmFlavor::Helm4 => "common.KubeVersion",
        }
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Version" | "GitVersion" | "String" => Some(Value::from(self.version.clone())),
            "Major" => Some(Value::from(self.major.clone())),
            "Minor" => Some(Value::from(self.minor.clone())),
            _ => None,
        }
    }
    fn to_go_string(&self) -> String {
        self.version.clone()
    }
    fn to_serializable(&self) -> Value {
        Value::map([
            ("Version".to_string(), Value::from(self.version.clone())),
            ("Major".to_string(), Value::from(self.major.clone())),
            ("Minor".to_string(), Value::from(self.minor.clone())),
        ])
    }
}

/// `.Capabilities.HelmVersion` (`version.BuildInfo`) of the helm release keelson matches.
#[derive(Debug, Clone)]
pub struct HelmVersion(pub HelmFlavor);

impl HelmVersion {
    /// (version, git commit, Go version, kube client version) of the helm release matched.
    fn parts(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    ) {
        match self.0 {
            HelmFlavor::Helm3 => (
                "v3.17.3",
                "e4da49785aa6e6ee2b86efd5dd9e43400318262b",
                "go1.23.7",
                None,
            ),
            HelmFlavor::Helm4 => (
                "v4.1.4",
                "05fa37973dc9e42b76e1d2883494c87174b6074f",
                "go1.25.9",
                Some("v1.35"),
            ),
        }
    }
}

impl Object for HelmVersion {
    fn type_name(&self) -> &str {
        "version.BuildInfo"
    }
    fn field(&self, name: &str) -> Option<Value> {
        let (version, commit, go, kube) = self.parts();
        match name {
            "Version" => Some(Value::from(version)),
            "GitCommit" => Some(Value::from(commit)),
            "GitTreeState" => Some(Value::from("clean")),
            "GoVersion" => Some(Value::from(go)),
            "KubeClientVersion" => kube.map(Value::from),
            _ => None,
        }
    }
    fn to_go_string(&self) -> String {
        let (version, commit, go, kube) = self.parts();
        match kube {
            Some(kube) => format!("{{{version} {commit} clean {go} {kube}}}"),
            None => format!("{{{version} {commit} clean {go}}}"),
        }
    }
    fn to_serializable(&self) -> Value {
        let (version, commit, go, kube) = self.parts();
        let mut entries = vec![
            ("version".to_string(), Value::from(version)),
            ("git_commit".to_string(), Value::from(commit)),
            ("git_tree_state".to_string(), Value::from("clean")),
            ("go_version".to_string(), Value::from(go)),
        ];
        if let Some(kube) = kube {
            entries.push(("kube_client_version".to_string(), Value::from(kube)));
        }
        Value::map(entries)
    }
}

/// `.Capabilities` (`*chartutil.Capabilities`).
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub api_versions: Arc<ApiVersions>,
    pub kube_version: Arc<KubeVersion>,
    pub flavor: HelmFlavor,
}

impl Object for Capabilities {
    fn type_name(&self) -> &str {
        match self.flavor {
            HelmFlavor::Helm3 => "*chartutil.Capabilities",
            HelmFlavor::Helm4 => "*common.Capabilities",
        }
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "APIVersions" => Some(Value::Object(self.api_versions.clone())),
            "KubeVersion" => Some(Value::Object(self.kube_version.clone())),
            "HelmVersion" => Some(Value::Object(Arc::new(HelmVersion(self.flavor)))),
            _ => None,
        }
    }
    fn to_go_string(&self) -> String {
        format!(
            "&{{{} {} {}}}",
            self.api_versions.to_go_string(),
            self.kube_version.to_go_string(),
            HelmVersion(self.flavor).to_go_string()
        )
    }
    fn to_serializable(&self) -> Value {
        Value::map([
            (
                "APIVersions".to_string(),
                self.api_versions.to_serializable(),
            ),
            (
                "KubeVersion".to_string(),
                self.kube_version.to_serializable(),
            ),
            (
                "HelmVersion".to_string(),
                HelmVersion(self.flavor).to_serializable(),
            ),
        ])
    }
}

/// `.Chart` as helm 4 passes it: a `map[string]interface{}` of the metadata fields plus `IsRoot`.
pub fn chart_map(metadata: &Metadata, is_root: bool) -> Value {
    let object = ChartObject {
        metadata: metadata.clone(),
        is_root,
    };
    let as_map = |value: Value| -> Value {
        match value {
            Value::List(items) => Value::list(items.iter().map(|item| match item {
                Value::Object(o) => {
                    let serial = o.to_serializable();
                    match serial.as_map() {
                        // Go field names, not JSON names, as helm 4 builds the map.
                        Some(_) => go_field_map(o.as_ref()),
                        None => serial,
                    }
                }
                other => other.clone(),
            })),
            other => other,
        }
    };
    let names = [
        "APIVersion",
        "Annotations",
        "AppVersion",
        "Condition",
        "Dependencies",
        "Deprecated",
        "Description",
        "Home",
        "Icon",
        "IsRoot",
        "Keywords",
        "KubeVersion",
        "Maintainers",
        "Name",
        "Sources",
        "Tags",
        "Type",
        "Version",
    ];
    Value::map(
        names
            .iter()
            .map(|n| (n.to_string(), as_map(object.field(n).unwrap_or_default()))),
    )
}

/// A struct object as a map of its Go field names (helm 4's maintainers and dependencies).
fn go_field_map(object: &dyn Object) -> Value {
    let names: &[&str] = if object.type_name() == "*chart.Maintainer" {
        &["Name", "Email", "URL"]
    } else {
        &[
            "Name",
            "Version",
            "Repository",
            "Condition",
            "Tags",
            "Enabled",
            "ImportValues",
            "Alias",
        ]
    };
    Value::map(
        names
            .iter()
            .map(|n| (n.to_string(), object.field(n).unwrap_or_default())),
    )
}

/// `.Chart`: Helm 3's `struct { chart.Metadata; IsRoot bool }`.
#[derive(Debug, Clone)]
pub struct ChartObject {
    pub metadata: Metadata,
    pub is_root: bool,
}

fn strings(items: &[String]) -> Value {
    Value::list(items.iter().map(|s| Value::from(s.clone())))
}

fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[derive(Debug, Clone)]
struct MaintainerObject(Maintainer);

impl Object for MaintainerObject {
    fn type_name(&self) -> &str {
        "*chart.Maintainer"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.0.name.clone())),
            "Email" => Some(Value::from(self.0.email.clone())),
            "URL" => Some(Value::from(self.0.url.clone())),
            _ => None,
        }
    }
    fn to_go_string(&self) -> String {
        format!("&{{{} {} {}}}", self.0.name, self.0.email, self.0.url)
    }
    fn to_serializable(&self) -> Value {
        Value::from_json(&serde_json::to_value(&self.0).unwrap_or_default())
    }
}

#[derive(Debug, Clone)]
struct DependencyObject(Dependency);

impl Object for DependencyObject {
    fn type_name(&self) -> &str {
        "*chart.Dependency"
    }
    fn field(&self, name: &str) -> Option<Value> {
        let d = &self.0;
        match name {
            "Name" => Some(Value::from(d.name.clone())),
            "Version" => Some(Value::from(d.version.clone())),
            "Repository" => Some(Value::from(d.repository.clone())),
            "Condition" => Some(Value::from(d.condition.clone())),
            "Tags" => Some(strings(&d.tags)),
            "Enabled" => Some(Value::Bool(d.enabled)),
            "ImportValues" => Some(Value::list(d.import_values.iter().map(Value::from_json))),
            "Alias" => Some(Value::from(d.alias.clone())),
            _ => None,
        }
    }
    fn to_go_string(&self) -> String {
        let d = &self.0;
        format!(
            "&{{{} {} {} {} {} {} [] {}}}",
            d.name,
            d.version,
            d.repository,
            d.condition,
            go_list(&d.tags),
            d.enabled,
            d.alias
        )
    }
    fn to_serializable(&self) -> Value {
        Value::from_json(&serde_json::to_value(&self.0).unwrap_or_default())
    }
}

impl Object for ChartObject {
    fn type_name(&self) -> &str {
        "struct { chart.Metadata; IsRoot bool }"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let m = &self.metadata;
        Some(match name {
            "Name" => Value::from(m.name.clone()),
            "Home" => Value::from(m.home.clone()),
            "Sources" => strings(&m.sources),
            "Version" => Value::from(m.version.clone()),
            "Description" => Value::from(m.description.clone()),
            "Keywords" => strings(&m.keywords),
            "Maintainers" => Value::list(
                m.maintainers
                    .iter()
                    .map(|x| Value::Object(Arc::new(MaintainerObject(x.clone())))),
            ),
            "Icon" => Value::from(m.icon.clone()),
            "APIVersion" => Value::from(m.api_version.clone()),
            "Condition" => Value::from(m.condition.clone()),
            "Tags" => Value::from(m.tags.clone()),
            "AppVersion" => Value::from(m.app_version.clone()),
            "Deprecated" => Value::Bool(m.deprecated),
            "Annotations" => Value::map(
                m.annotations
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone()))),
            ),
            "KubeVersion" => Value::from(m.kube_version.clone()),
            "Dependencies" => Value::list(
                m.dependencies
                    .iter()
                    .map(|d| Value::Object(Arc::new(DependencyObject(d.clone())))),
            ),
            "Type" => Value::from(m.chart_type.clone()),
            "IsRoot" => Value::Bool(self.is_root),
            "Metadata" => {
                return Some(Value::Object(Arc::new(ChartObject {
                    metadata: m.clone(),
                    is_root: self.is_root,
                })));
            }
            _ => return None,
        })
    }

    fn to_go_string(&self) -> String {
        let m = &self.metadata;
        let annotations: Vec<String> = m
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let maintainers: Vec<String> = m
            .maintainers
            .iter()
            .map(|x| MaintainerObject(x.clone()).to_go_string())
            .collect();
        let dependencies: Vec<String> = m
            .dependencies
            .iter()
            .map(|d| DependencyObject(d.clone()).to_go_string())
            .collect();
        format!(
            "{{{{{} {} {} {} {} {} {} {} {} {} {} {} {} map[{}] {} {} {}}} {}}}",
            m.name,
            m.home,
            go_list(&m.sources),
            m.version,
            m.description,
            go_list(&m.keywords),
            go_list(&maintainers),
            m.icon,
            m.api_version,
            m.condition,
            m.tags,
            m.app_version,
            m.deprecated,
            annotations.join(" "),
            m.kube_version,
            go_list(&dependencies),
            m.chart_type,
            self.is_root
        )
    }

    fn to_serializable(&self) -> Value {
        let mut json = serde_json::to_value(&self.metadata).unwrap_or_default();
        if let Some(map) = json.as_object_mut() {
            map.insert("IsRoot".to_string(), serde_json::Value::Bool(self.is_root));
        }
        Value::from_json(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_gobwas() {
        assert!(glob_match("files/*", "files/a.txt"));
        assert!(!glob_match("files/*", "files/sub/a.txt"));
        assert!(glob_match("files/**", "files/sub/a.txt"));
        assert!(glob_match("**.yaml", "a/b/c.yaml"));
        assert!(glob_match("files/{a,b}.txt", "files/b.txt"));
        assert!(glob_match("f?les/[a-c].txt", "files/b.txt"));
        assert!(!glob_match("files/[!a-c].txt", "files/b.txt"));
    }

    #[test]
    fn files_methods() {
        let files = Files::new(BTreeMap::from([
            ("files/a.txt".to_string(), Arc::new(b"one\ntwo\n".to_vec())),
            ("files/b.bin".to_string(), Arc::new(vec![0u8, 1])),
        ]));
        let get = files.call_method("Get", &[Value::from("files/a.txt")]);
        assert!(matches!(get, Some(Ok(Value::String(s))) if s == "one\ntwo\n"));
        let missing = files.call_method("Get", &[Value::from("nope")]);
        assert!(matches!(missing, Some(Ok(Value::String(s))) if s.is_empty()));
        let lines = files.call_method("Lines", &[Value::from("files/a.txt")]);
        assert!(matches!(lines, Some(Ok(Value::List(l))) if l.len() == 2));
        let glob = files.call_method("Glob", &[Value::from("files/*.txt")]);
        assert!(
            matches!(glob, Some(Ok(Value::Object(o))) if o.to_go_string().starts_with("map[files/a.txt:"))
        );
        assert!(matches!(
            files.call_method("Get", &[]),
            Some(Err(message)) if message.contains("want 1 got 0")
        ));
    }

    #[test]
    fn as_config_and_as_secrets_like_helm() {
        let files = Files::new(BTreeMap::from([
            (
                "config/app.yaml".to_string(),
                Arc::new(b"key: value\nlist:\n  - a\n".to_vec()),
            ),
            (
                "config/nginx.conf".to_string(),
                Arc::new(b"server {\n  listen 80;\n}\n".to_vec()),
            ),
        ]));
        // Seen with helm 3.17.3 (fixtures/charts/files).
        let config = files.call_method("AsConfig", &[]);
        assert!(matches!(config, Some(Ok(Value::String(s))) if s ==
            "app.yaml: |\n  key: value\n  list:\n    - a\nnginx.conf: |\n  server {\n    listen 80;\n  }"));
        let secrets = files.field("AsSecrets");
        assert!(matches!(secrets, Some(Value::String(s)) if s ==
            "app.yaml: a2V5OiB2YWx1ZQpsaXN0OgogIC0gYQo=\nnginx.conf: c2VydmVyIHsKICBsaXN0ZW4gODA7Cn0K"));
        let empty = Files::default().field("AsConfig");
        assert!(matches!(empty, Some(Value::String(s)) if s.is_empty()));
    }

    #[test]
    fn capabilities_like_helm3() {
        let caps = ApiVersions::helm3_defaults_with(&["foo/v1".to_string()]);
        assert!(caps.has("apps/v1"));
        assert!(caps.has("foo/v1"));
        assert!(!caps.has("nope/v1"));
        let kube = KubeVersion::parse("1.30.0", HelmFlavor::Helm3);
        assert!(kube.is_some_and(|k| k.version == "v1.30.0" && k.minor == "30"));
        assert_eq!(
            HelmVersion(HelmFlavor::Helm3).to_go_string(),
            "{v3.17.3 e4da49785aa6e6ee2b86efd5dd9e43400318262b clean go1.23.7}"
        );
        assert_eq!(
            HelmVersion(HelmFlavor::Helm4).to_go_string(),
            "{v4.1.4 05fa37973dc9e42b76e1d2883494c87174b6074f clean go1.25.9 v1.35}"
        );
    }

    #[test]
    fn chart_object_prints_like_go() {
        let chart = ChartObject {
            metadata: Metadata {
                name: "yt".into(),
                version: "0.1.0".into(),
                api_version: "v2".into(),
                ..Metadata::default()
            },
            is_root: true,
        };
        // Seen with helm 3.17.3: `{{ .Chart }}` of a minimal chart.
        assert_eq!(
            chart.to_go_string(),
            "{{yt  [] 0.1.0  [] []  v2    false map[]  [] } true}"
        );
    }
}
