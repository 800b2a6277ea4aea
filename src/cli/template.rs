//! `keelson template`: renders a chart locally with the same arguments and output as `helm template`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::render::chart;
use crate::render::release::{self, HelmFlavor, RenderSettings, TemplateOutput};
use crate::values::ValueOptions;

/// Arguments of `keelson template`, named and ordered as `helm template`'s.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TemplateArgs {
    /// Release name, then chart path (directory or .tgz). With one argument it is the chart and
    /// the release is named `release-name`, as in helm.
    #[arg(value_name = "[NAME] CHART", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Namespace of the release.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Values files (repeatable, comma-separated lists allowed).
    #[arg(short = 'f', long = "values", value_delimiter = ',')]
    pub values: Vec<PathBuf>,
    /// Set values (`a.b=1,c[0]=x`).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Set string values.
    #[arg(long = "set-string")]
    pub set_string: Vec<String>,
    /// Set JSON values.
    #[arg(long = "set-json")]
    pub set_json: Vec<String>,
    /// Set values from files (`key=path`).
    #[arg(long = "set-file")]
    pub set_file: Vec<String>,
    /// Set literal string values (no escaping or splitting).
    #[arg(long = "set-literal")]
    pub set_literal: Vec<String>,
    /// Kubernetes version for Capabilities.KubeVersion.
    #[arg(long = "kube-version")]
    pub kube_version: Option<String>,
    /// Extra API versions for Capabilities.APIVersions (repeatable, comma-separated allowed).
    #[arg(short = 'a', long = "api-versions", value_delimiter = ',')]
    pub api_versions: Vec<String>,
    /// Only print the manifests rendered from these templates (globs allowed).
    #[arg(short = 's', long = "show-only")]
    pub show_only: Vec<String>,
    /// Print the chart's CRDs too.
    #[arg(long = "include-crds")]
    pub include_crds: bool,
    /// Set .Release.IsUpgrade instead of .Release.IsInstall.
    #[arg(long = "is-upgrade")]
    pub is_upgrade: bool,
    /// Leave out test hooks.
    #[arg(long = "skip-tests")]
    pub skip_tests: bool,
    /// Leave out hooks.
    #[arg(long = "no-hooks")]
    pub no_hooks: bool,
    /// Do not validate values against values.schema.json.
    #[arg(long = "skip-schema-validation")]
    pub skip_schema_validation: bool,
    /// Reproduce helm 4's behaviour where it differs from helm 3 (kind order, range over ints).
    #[arg(long = "helm4")]
    pub helm4: bool,
}

/// Runs `keelson template`: the rendered manifests on stdout; errors as `Error: ...`, exit 1.
pub fn run(args: &TemplateArgs) -> anyhow::Result<ExitCode> {
    let (name, chart_path) = match args.args.as_slice() {
        [chart] => ("release-name".to_string(), chart.clone()),
        [name, chart] => (name.clone(), chart.clone()),
        _ => anyhow::bail!("\"keelson template\" requires at most 2 arguments"),
    };
    let flavor = if args.helm4 {
        HelmFlavor::Helm4
    } else {
        HelmFlavor::Helm3
    };
    crate::render::engine::process_ends_after_render();
    let loaded = chart::load_as(std::path::Path::new(&chart_path), flavor)?;
    let options = ValueOptions {
        value_files: args.values.clone(),
        set: args.set.clone(),
        set_string: args.set_string.clone(),
        set_json: args.set_json.clone(),
        set_file: args.set_file.clone(),
        set_literal: args.set_literal.clone(),
    };
    // Helm 4 reads `-f` files with the same multi-document reader as values.yaml.
    let user_values = match flavor {
        HelmFlavor::Helm3 => options.merge()?,
        HelmFlavor::Helm4 => options.merge_all_documents()?,
    };
    let settings = RenderSettings {
        release_name: name,
        namespace: args.namespace.clone(),
        revision: 1,
        is_upgrade: args.is_upgrade,
        kube_version: args.kube_version.clone(),
        api_versions: args.api_versions.clone(),
        flavor,
        lookup: None,
        skip_schema_validation: args.skip_schema_validation,
        budget: Default::default(),
    };
    let rendered = match release::render_owned_chart(loaded, &user_values, &settings) {
        Ok(rendered) => rendered,
        Err(err) if err.after_release_created() => {
            anyhow::bail!("{err}\n\nUse --debug flag to render out invalid YAML")
        }
        Err(err) => return Err(err.into()),
    };
    let output = TemplateOutput {
        include_crds: args.include_crds,
        skip_tests: args.skip_tests,
        no_hooks: args.no_hooks,
        show_only: args.show_only.clone(),
    };
    let text = release::template_output(&rendered, &output).map_err(anyhow::Error::msg)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .context("cannot write to stdout")?;
    // The process exits next: its memory goes back whole, without freeing each value.
    std::mem::forget((user_values, rendered, text));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Option<super::TemplateArgs> {
        let mut argv = vec!["keelson", "template"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).ok()?.command {
            Command::Template(args) => Some(*args),
            _ => None,
        }
    }

    #[test]
    fn accepts_helm_template_arguments() {
        let args = parse(&[
            "rel",
            "./chart",
            "-n",
            "demo",
            "-f",
            "a.yaml,b.yaml",
            "--values",
            "c.yaml",
            "--set",
            "a=1,b=2",
            "--set",
            "c=3",
            "--set-string",
            "d=4",
            "--kube-version",
            "1.30.0",
            "--api-versions",
            "x/v1,y/v1",
            "-a",
            "z/v1",
            "--show-only",
            "templates/a.yaml",
            "--include-crds",
            "--is-upgrade",
        ]);
        let Some(args) = args else {
            panic!("helm template's arguments must parse");
        };
        assert_eq!(args.args, vec!["rel", "./chart"]);
        assert_eq!(args.namespace, "demo");
        assert_eq!(args.values.len(), 3);
        assert_eq!(args.set, vec!["a=1,b=2", "c=3"]);
        assert_eq!(args.api_versions, vec!["x/v1", "y/v1", "z/v1"]);
        assert!(args.include_crds && args.is_upgrade);
        assert_eq!(args.kube_version.as_deref(), Some("1.30.0"));
    }

    #[test]
    fn one_argument_is_the_chart() {
        let args = parse(&["./chart"]).map(|a| a.args);
        assert_eq!(args, Some(vec!["./chart".to_string()]));
        assert!(parse(&[]).is_none());
        assert!(parse(&["a", "b", "c"]).is_none());
    }
}
