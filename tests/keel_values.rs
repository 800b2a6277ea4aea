//! The values keelson reads a release's `keel:` block from are the values Helm computes for it:
//! `keel::release_values` of a stored release equals `helm get values --all` of helm 3 and 4.

mod support;

use keelson::storage::{Driver, DriverKind, Storage};
use serde_json::Value;
use support::TestEnv;

/// A chart whose defaults have maps, scalars, a `null` and a `keel:` block; its one template
/// uses no values, so any values install.
const CHART_YAML: &str = "apiVersion: v2\nname: keel-values\nversion: 0.1.0\n";
const DEFAULT_VALUES: &str = "\
image:
  repository: 127.0.0.1:5000/keel-values/app
  tag: 1.0.0
  pullPolicy: IfNotPresent
nested:
  keep: default
  drop: willBeNulled
  deep:
    a: 1
    b: [1, 2.5, three]
int: 42
big: 12345678
tilde: ~
nullDefaults:
  both: ~
  onlyDefault: ~
  deep:
    both: ~
keel:
  policy: minor
  images:
    - repository: image.repository
      tag: image.tag
";
const TEMPLATE: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-static
data:
  fixed: value
";

/// User values on Helm's edge cases: `null` deleting a default (also inside a map), `null` kept
/// for a key without default, a map over a default scalar, a new map with a `null` inside, and
/// `null` over a `null` default inside a map (helm 3.17 deletes the key, helm 4.1 keeps it).
const USER_VALUES: &str = "\
nested:
  drop: null
  extra: added
  deep:
    b: replaced
    gone: null
int:
  a: null
  b: 1
newTop: null
newMap:
  x: null
  z: 1
image:
  tag: 2.0.0
tilde: now-set
big: null
nullDefaults:
  both: null
  deep:
    both: null
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_values_equal_helm_get_values_all() {
    let env = TestEnv::get();
    let work = std::env::temp_dir().join(format!("keelson-keel-values-{}", std::process::id()));
    let chart_dir = work.join("keel-values");
    std::fs::create_dir_all(chart_dir.join("templates")).expect("create the chart directory");
    for (path, text) in [
        ("Chart.yaml", CHART_YAML),
        ("values.yaml", DEFAULT_VALUES),
        ("templates/configmap.yaml", TEMPLATE),
    ] {
        std::fs::write(chart_dir.join(path), text).expect("write the chart");
    }
    let values_file = work.join("user.yaml");
    std::fs::write(&values_file, USER_VALUES).expect("write the user values file");
    let chart = chart_dir.display().to_string();
    let values_path = values_file.display().to_string();

    let storage = Storage::new(Driver::new(env.client().await, DriverKind::Secret));

    let mut keeps_null_over_null = Vec::new();
    for helm in ["helm3", "helm4"] {
        let run = |args: &[&str]| {
            if helm == "helm3" {
                env.helm3(args)
            } else {
                env.helm4(args)
            }
        };
        let ns = env.fresh_namespace(&format!("keel-values-{helm}"));
        run(&[
            "install",
            "coalesced",
            &chart,
            "-n",
            &ns,
            "-f",
            &values_path,
        ]);
        let from_helm: Value = serde_json::from_str(&run(&[
            "get",
            "values",
            "coalesced",
            "-n",
            &ns,
            "--all",
            "-o",
            "json",
        ]))
        .expect("helm get values prints JSON");
        let stored = storage
            .last(&ns, "coalesced")
            .await
            .expect("the release helm installed");
        assert_eq!(
            keelson::keel::release_values(&stored.release),
            from_helm,
            "{helm}: release values differ from `helm get values --all`"
        );
        keeps_null_over_null.push(from_helm.pointer("/nullDefaults/both").is_some());
        env.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    }
    assert_eq!(
        keeps_null_over_null,
        [false, true],
        "helm 3.17 deletes a null over a null default inside a map, helm 4.1 keeps it"
    );
    let _ = std::fs::remove_dir_all(&work);
}
