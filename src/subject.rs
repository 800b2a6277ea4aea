//! What keelson moves: a Helm release or a plain workload. Approval requests and notifications
//! name their subject with it, so both kinds go through the same code.

/// A Helm release or a workload with `keel.sh/*` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Release {
        namespace: String,
        name: String,
    },
    Workload {
        /// As Kubernetes spells it (`Deployment`); a plain string so that approvals and
        /// notifications need nothing from the workloads module.
        kind: String,
        namespace: String,
        name: String,
    },
}

/// The `kind` an approval or notification about a release carries.
pub const RELEASE_KIND: &str = "Release";

impl Subject {
    pub fn release(namespace: &str, name: &str) -> Self {
        Subject::Release {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn workload(kind: &str, namespace: &str, name: &str) -> Self {
        Subject::Workload {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Subject::Release { namespace, .. } | Subject::Workload { namespace, .. } => namespace,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Subject::Release { name, .. } | Subject::Workload { name, .. } => name,
        }
    }

    /// `Release`, or the workload's kind.
    pub fn kind(&self) -> &str {
        match self {
            Subject::Release { .. } => RELEASE_KIND,
            Subject::Workload { kind, .. } => kind,
        }
    }

    /// The release's name; `None` for a workload.
    pub fn release_name(&self) -> Option<&str> {
        match self {
            Subject::Release { name, .. } => Some(name),
            Subject::Workload { .. } => None,
        }
    }

    /// The heading people read: `ns/name` for a release (as before workloads had approvals),
    /// `deployment/ns/name` for a workload (kubectl's lower-case kind).
    pub fn label(&self) -> String {
        match self {
            Subject::Release { namespace, name } => format!("{namespace}/{name}"),
            Subject::Workload {
                kind,
                namespace,
                name,
            } => format!("{}/{namespace}/{name}", kind.to_ascii_lowercase()),
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_kind_namespace_and_name() {
        assert_eq!(Subject::release("apps", "web").label(), "apps/web");
        let workload = Subject::workload("Deployment", "default", "ithome");
        assert_eq!(workload.label(), "deployment/default/ithome");
        assert_eq!(workload.kind(), "Deployment");
        assert_eq!(workload.release_name(), None);
    }
}
