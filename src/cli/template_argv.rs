//! The plain forms of a `keelson template` command line, read without clap.
//!
//! Building clap's `Command` for `template` (its 20 arguments with their help texts) and
//! matching against it took about 0.28 ms, 5-7% of rendering a small or mid-size chart. Almost
//! every command line is plain: long options with `=` or a separate value, `-n x` style short
//! options, `-v` counts and one or two positionals. This reader takes those and gives up
//! (`None`) on anything else (`--help`, `--`, unknown or repeated options, a value that looks
//! like an option, empty list items), which then goes through clap as before, so help texts
//! and error messages stay clap's.

use std::path::PathBuf;

use super::GlobalArgs;
use super::template::TemplateArgs;
use crate::cluster::ClusterArgs;
use crate::logging::LogFormat;

/// Reads `argv` (program name, `template`, then its arguments) when every argument has a plain
/// form whose meaning clap would give the same.
pub fn read(argv: &[String]) -> Option<(GlobalArgs, TemplateArgs)> {
    let [_, command, rest @ ..] = argv else {
        return None;
    };
    if command != "template" {
        return None;
    }
    let mut reader = Reader::default();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            if reader.long_flag(name) {
                if inline.is_some() {
                    return None;
                }
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => words.next()?,
            };
            reader.long_option(name, plain_value(value)?)?;
        } else if let Some(short) = word.strip_prefix('-') {
            if !short.is_empty() && short.bytes().all(|b| b == b'v') {
                reader.verbose = reader
                    .verbose
                    .checked_add(u8::try_from(short.len()).ok()?)?;
                continue;
            }
            let name = match short {
                "n" => "namespace",
                "f" => "values",
                "a" => "api-versions",
                "s" => "show-only",
                _ => return None,
            };
            reader.long_option(name, plain_value(words.next()?)?)?;
        } else {
            reader.template.args.push(word.clone());
        }
    }
    if reader.template.args.is_empty() || reader.template.args.len() > 2 {
        return None;
    }
    let global = GlobalArgs {
        verbose: reader.verbose,
        log_format: reader.log_format.unwrap_or(LogFormat::Text),
        cluster: ClusterArgs {
            kubeconfig: reader.kubeconfig,
            context: reader.context,
        },
    };
    let mut template = reader.template;
    template.namespace = reader.namespace.unwrap_or_else(|| "default".to_string());
    template.kube_version = reader.kube_version;
    Some((global, template))
}

/// A value clap takes as is: not empty and not looking like an option.
fn plain_value(value: &str) -> Option<&str> {
    (!value.is_empty() && !value.starts_with('-')).then_some(value)
}

/// `value_delimiter = ','` splits a value into items; empty items are left to clap.
fn comma_list(value: &str) -> Option<impl Iterator<Item = &str>> {
    (!value.split(',').any(str::is_empty)).then(|| value.split(','))
}

/// Sets a once-only option; a second occurrence is clap's error to report.
fn set_once(slot: &mut Option<String>, value: &str) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value.to_string());
    Some(())
}

#[derive(Default)]
struct Reader {
    template: TemplateArgs,
    verbose: u8,
    log_format: Option<LogFormat>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    kube_version: Option<String>,
}

impl Reader {
    /// Sets a boolean flag; false when `name` is not one. A repeated flag is clap's error.
    fn long_flag(&mut self, name: &str) -> bool {
        let template = &mut self.template;
        let flag = match name {
            "include-crds" => &mut template.include_crds,
            "is-upgrade" => &mut template.is_upgrade,
            "skip-tests" => &mut template.skip_tests,
            "no-hooks" => &mut template.no_hooks,
            "skip-schema-validation" => &mut template.skip_schema_validation,
            "helm4" => &mut template.helm4,
            "verbose" => {
                // Counted, like `-v`; past u8 it is clap's to refuse.
                return match self.verbose.checked_add(1) {
                    Some(count) => {
                        self.verbose = count;
                        true
                    }
                    None => false,
                };
            }
            _ => return false,
        };
        if *flag {
            // `flag` repeated: not a flag this reader takes; the caller then gives up on it
            // as an unknown option name.
            return false;
        }
        *flag = true;
        true
    }

    fn long_option(&mut self, name: &str, value: &str) -> Option<()> {
        let template = &mut self.template;
        match name {
            "namespace" => set_once(&mut self.namespace, value)?,
            "kube-version" => set_once(&mut self.kube_version, value)?,
            "context" => set_once(&mut self.context, value)?,
            "kubeconfig" => {
                if self.kubeconfig.is_some() {
                    return None;
                }
                self.kubeconfig = Some(PathBuf::from(value));
            }
            "log-format" => {
                if self.log_format.is_some() {
                    return None;
                }
                self.log_format = Some(match value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return None,
                });
            }
            "values" => template
                .values
                .extend(comma_list(value)?.map(PathBuf::from)),
            "api-versions" => template
                .api_versions
                .extend(comma_list(value)?.map(str::to_string)),
            "set" => template.set.push(value.to_string()),
            "set-string" => template.set_string.push(value.to_string()),
            "set-json" => template.set_json.push(value.to_string()),
            "set-file" => template.set_file.push(value.to_string()),
            "set-literal" => template.set_literal.push(value.to_string()),
            "show-only" => template.show_only.push(value.to_string()),
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn argv(words: &[&str]) -> Vec<String> {
        ["keelson", "template"]
            .iter()
            .chain(words)
            .map(|w| w.to_string())
            .collect()
    }

    /// clap's reading of the same command line, in the same Debug form.
    fn by_clap(argv: &[String]) -> Option<String> {
        let cli = Cli::try_parse_from(argv).ok()?;
        let Command::Template(args) = cli.command else {
            return None;
        };
        Some(format!("{:?} {:?}", cli.global, args))
    }

    fn by_reader(argv: &[String]) -> Option<String> {
        let (global, args) = super::read(argv)?;
        Some(format!("{global:?} {args:?}"))
    }

    /// The plain command lines the benchmark, the tests and users type: read without clap,
    /// with exactly clap's result.
    #[test]
    fn plain_command_lines_read_as_clap_reads_them() {
        let cases: &[&[&str]] = &[
            &["./chart"],
            &["rel", "./chart"],
            &[
                "rel",
                "./chart",
                "-n",
                "demo",
                "-f",
                "values/x.yaml",
                "--kube-version",
                "1.30.0",
            ],
            &[
                "rel",
                "./chart",
                "--namespace=demo",
                "--values=a.yaml,b.yaml",
                "--values",
                "c.yaml",
            ],
            &[
                "./chart",
                "rel",
                "--set",
                "a.b=1,c[0]=x",
                "--set=d=2",
                "--set-string",
                "e=f",
            ],
            &[
                "rel",
                "./chart",
                "--set-json",
                "a={\"b\":1}",
                "--set-file",
                "k=path",
                "--set-literal",
                "l=a,b",
            ],
            &[
                "rel",
                "./chart",
                "-a",
                "v1/Foo,batch/v1",
                "--api-versions",
                "x/v1",
            ],
            &[
                "rel",
                "./chart",
                "-s",
                "templates/a.yaml",
                "--show-only=templates/b.yaml",
            ],
            &[
                "rel",
                "./chart",
                "--include-crds",
                "--is-upgrade",
                "--skip-tests",
                "--no-hooks",
            ],
            &["rel", "./chart", "--skip-schema-validation", "--helm4"],
            &["-v", "rel", "./chart", "-vv", "--verbose"],
            &[
                "rel",
                "./chart",
                "--log-format",
                "json",
                "--kubeconfig",
                "/k",
                "--context=c",
            ],
            &["rel", "./chart", "-f", "a b.yaml", "--set", "x=a=b"],
        ];
        for words in cases {
            let argv = argv(words);
            let clap = by_clap(&argv);
            assert!(clap.is_some(), "clap reads {words:?}");
            assert_eq!(by_reader(&argv), clap, "{words:?}");
        }
    }

    /// Anything else goes to clap, for its own result, help or error text.
    #[test]
    fn other_command_lines_are_left_to_clap() {
        let cases: &[&[&str]] = &[
            &[],
            &["a", "b", "c"],
            &["--help"],
            &["-h"],
            &["--version"],
            &["rel", "./chart", "--bogus"],
            &["rel", "./chart", "-n"],
            &["rel", "./chart", "-n", "a", "-n", "b"],
            &["rel", "./chart", "--helm4", "--helm4"],
            &["rel", "./chart", "--helm4=true"],
            &["rel", "./chart", "-ndemo"],
            &["rel", "./chart", "-n=demo"],
            &["rel", "./chart", "-vn", "demo"],
            &["rel", "./chart", "--set", "-x"],
            &["rel", "./chart", "--namespace="],
            &["rel", "./chart", "-f", "a,,b"],
            &["rel", "./chart", "-f", "a,"],
            &["rel", "./chart", "--log-format", "yaml"],
            &["rel", "--", "./chart"],
            &["-", "./chart"],
        ];
        for words in cases {
            assert_eq!(by_reader(&argv(words)), None, "{words:?}");
        }
        assert_eq!(by_reader(&["keelson".into(), "list".into()]), None);
    }
}
