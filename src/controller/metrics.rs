//! The controller's counters, gauges and one histogram, served at `/metrics` in Prometheus'
//! text format. Labels are short fixed strings (results, endpoints, codes, hosts), never
//! `Debug` output.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the reconcile-duration histogram's buckets.
const DURATION_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    gauges: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    reconcile: Histogram,
}

/// Every metric the controller exports.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

fn help(name: &str) -> &'static str {
    match name {
        "keelson_updates_total" => "Releases handled by the updater, by result.",
        "keelson_checks_total" => {
            "Release plans run, by what triggered them (poll, webhook, change)."
        }
        "keelson_pending_repaired_total" => {
            "Pending records left by a crashed writer and finished."
        }
        "keelson_webhook_requests_total" => "Webhook requests, by endpoint and HTTP status code.",
        "keelson_registry_requests_total" => {
            "Registry requests, by registry host and HTTP status code (0: no answer)."
        }
        "keelson_subchart_fetches_total" => {
            "Dependency charts obtained for full renders, by source (download: archives downloaded, index: repository indexes downloaded, disk and memory: cache hits)."
        }
        "keelson_tracked_releases" => "Releases with a valid keel block.",
        "keelson_tracked_images" => "Images tracked across all releases.",
        "keelson_tracked_repositories" => "Distinct repositories checked.",
        "keelson_invalid_releases" => "Releases whose keel block is refused.",
        "keelson_leader" => "1 while this replica holds the leader Lease.",
        "keelson_watch_events_total" => "Release record events received from the watch.",
        "keelson_records_decoded_total" => {
            "Release records decoded (only when a newest record changes)."
        }
        _ => "",
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut families)
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        let labels = own(labels);
        self.with(|f| {
            *f.counters
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default() += by
        });
    }

    /// Sets a counter to a total kept elsewhere (e.g. the registry client's own counts).
    pub fn set_counter(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = own(labels);
        self.with(|f| {
            f.counters.entry(name).or_default().insert(labels, value);
        });
    }

    pub fn set_gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let labels = own(labels);
        self.with(|f| {
            f.gauges.entry(name).or_default().insert(labels, value);
        });
    }

    /// Records how long one release's reconcile took.
    pub fn observe_reconcile(&self, seconds: f64) {
        self.with(|f| {
            let h = &mut f.reconcile;
            for (bucket, bound) in h.counts.iter_mut().zip(DURATION_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        });
    }

    /// A counter's current value (tests and the dashboard read it).
    pub fn counter(&self, name: &str, labels: &[(&'static str, &str)]) -> f64 {
        let labels = own(labels);
        self.with(|f| {
            f.counters
                .get(name)
                .and_then(|series| series.get(&labels))
                .copied()
                .unwrap_or(0.0)
        })
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        self.with(|f| {
            let mut out = String::new();
            for (kind, families) in [("counter", &f.counters), ("gauge", &f.gauges)] {
                for (name, series) in families {
                    let _ = writeln!(out, "# HELP {name} {}", help(name));
                    let _ = writeln!(out, "# TYPE {name} {kind}");
                    for (labels, value) in series {
                        let _ =
                            writeln!(out, "{name}{} {}", label_text(labels, None), number(*value));
                    }
                }
            }
            let name = "keelson_reconcile_duration_seconds";
            let _ = writeln!(out, "# HELP {name} Time to plan (and write) one release.");
            let _ = writeln!(out, "# TYPE {name} histogram");
            let h = &f.reconcile;
            for (count, bound) in h.counts.iter().zip(DURATION_BUCKETS) {
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}", number(h.sum));
            let _ = writeln!(out, "{name}_count {}", h.count);
            out
        })
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn label_text(labels: &Labels, extra: Option<(&str, &str)>) -> String {
    if labels.is_empty() && extra.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape(v)));
    }
    format!("{{{}}}", parts.join(","))
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_help_type_and_escaped_labels() {
        let metrics = Metrics::default();
        metrics.inc("keelson_updates_total", &[("result", "updated")]);
        metrics.inc("keelson_updates_total", &[("result", "updated")]);
        metrics.inc(
            "keelson_webhook_requests_total",
            &[("endpoint", "native"), ("code", "401")],
        );
        metrics.set_gauge("keelson_leader", &[], 1.0);
        metrics.set_gauge("keelson_tracked_releases", &[("odd", "a\"b")], 3.0);
        metrics.observe_reconcile(0.2);
        metrics.observe_reconcile(40.0);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE keelson_updates_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("keelson_updates_total{result=\"updated\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("keelson_webhook_requests_total{endpoint=\"native\",code=\"401\"} 1\n")
        );
        assert!(text.contains("keelson_leader 1\n"));
        assert!(text.contains("keelson_tracked_releases{odd=\"a\\\"b\"} 3\n"));
        assert!(text.contains("keelson_reconcile_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("keelson_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("keelson_reconcile_duration_seconds_count 2\n"));
        assert_eq!(
            metrics.counter("keelson_updates_total", &[("result", "updated")]),
            2.0
        );
    }
}
