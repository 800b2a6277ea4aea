//! `lookup` answered from the cluster during full renders, as `helm upgrade` answers it, so a
//! chart that keeps generated secrets or certificates through `lookup` re-renders its deployed
//! revision byte for byte instead of falling back to patch mode.
//!
//! keelson's service account usually reads more than the release's owner may, so lookups are
//! limited to the release's own namespace and to cluster-scoped objects: anything else fails
//! the render (then patch mode, with the reason), never reads another namespace into a
//! manifest. Both renders of one update (the deployed revision and the new one) share one
//! `ClusterLookup`, so they see the same answers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value as Json;

use crate::render::engine::Lookup;
use gotemplate::Value;

/// Lookups one update may make (both renders together): a template calling `lookup` in a loop
/// fails instead of flooding the apiserver.
const MAX_LOOKUPS: usize = 200;
/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Result<Json, String>;
type Discovered = Result<Option<(ApiResource, bool)>, String>;

pub struct ClusterLookup {
    client: kube::Client,
    runtime: tokio::runtime::Handle,
    /// The release's namespace: the only one namespaced lookups may read.
    namespace: String,
    answers: Mutex<HashMap<(String, String, String, String), Answer>>,
    /// Discovery per (apiVersion, kind).
    resources: Mutex<HashMap<(String, String), Discovered>>,
    calls: AtomicUsize,
}

impl ClusterLookup {
    /// Must be created on the async runtime whose handle the (blocking) renders use.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            client,
            runtime: tokio::runtime::Handle::current(),
            namespace: namespace.to_string(),
            answers: Mutex::new(HashMap::new()),
            resources: Mutex::new(HashMap::new()),
            calls: AtomicUsize::new(0),
        }
    }

    fn answers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String, String, String), Answer>> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `future` on the runtime from the render thread (never an async worker) and waits.
    fn wait<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = sender.send(tokio::time::timeout(LOOKUP_TIMEOUT, future).await);
        });
        match receiver.recv_timeout(LOOKUP_TIMEOUT + Duration::from_secs(1)) {
            Ok(Ok(value)) => Ok(value),
            _ => Err(format!(
                "the cluster did not answer within {}s",
                LOOKUP_TIMEOUT.as_secs()
            )),
        }
    }

    /// The resource serving `kind` and whether it is namespaced, discovered once per kind for
    /// the update; `None` when its group is served without that kind.
    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        gvk: GroupVersionKind,
        described: &str,
    ) -> Result<Option<(ApiResource, bool)>, String> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.lock_resources().get(&key) {
            return found.clone();
        }
        let client = self.client.clone();
        let found = self.wait(async move { kube::discovery::pinned_kind(&client, &gvk).await })?;
        let found = match found {
            Ok((resource, capabilities)) => {
                Ok(Some((resource, capabilities.scope == Scope::Namespaced)))
            }
            Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_))) => Ok(None),
            Err(err) => Err(format!(
                "unable to get apiresource from unstructured: {described}: {}",
                crate::cluster::api_error_text(&err)
            )),
        };
        self.lock_resources().insert(key, found.clone());
        found
    }

    fn lock_resources(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Discovered>> {
        self.resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ask(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Answer {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let described = format!("{group}/{version}, Kind={kind}");
        let (resource, namespaced) = match self.resource(api_version, kind, gvk, &described)? {
            Some(found) => found,
            // A served group without that kind: Helm asks for a resource with no name, which
            // the apiserver answers 404, read as "not found".
            None => return Ok(Json::Object(Default::default())),
        };
        if namespaced && namespace != self.namespace {
            let asked = if namespace.is_empty() {
                "every namespace".to_string()
            } else {
                format!("namespace {namespace:?}")
            };
            return Err(format!(
                "keelson answers lookup of namespaced objects only in the release's namespace {:?}, not {asked} ({described})",
                self.namespace
            ));
        }
        let path = url_path(&resource, namespaced.then_some(namespace), name);
        let client = self.client.clone();
        let answer = self.wait(async move {
            let request = http::Request::get(&path).body(Vec::new()).map_err(|err| {
                kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(err))
            })?;
            client.request::<Json>(request).await
        })?;
        match answer {
            Ok(object) if name.is_empty() => Ok(list_items_typed(object)),
            Ok(object) => Ok(object),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Ok(Json::Object(Default::default()))
            }
            Err(err) => Err(crate::cluster::api_error_text(&err)),
        }
    }
}

impl Lookup for ClusterLookup {
    fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, String> {
        let key = (
            api_version.to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        if let Some(answer) = self.answers().get(&key) {
            return answer.as_ref().map(Value::from_json).map_err(Clone::clone);
        }
        if self.calls.fetch_add(1, Ordering::Relaxed) >= MAX_LOOKUPS {
            return Err(format!(
                "more than {MAX_LOOKUPS} different lookups in one update"
            ));
        }
        let answer = self.ask(api_version, kind, namespace, name);
        let value = answer.as_ref().map(Value::from_json).map_err(Clone::clone);
        self.answers().insert(key, answer);
        value
    }
}

/// The object's or the collection's URL, as client-go's dynamic client builds it.
fn url_path(resource: &ApiResource, namespace: Option<&str>, name: &str) -> String {
    let mut path = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    if let Some(namespace) = namespace {
        path.push_str("/namespaces/");
        path.push_str(namespace);
    }
    path.push('/');
    path.push_str(&resource.plural);
    if !name.is_empty() {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// A list as client-go's unstructured decoding gives it to templates: items without their own
/// `apiVersion` and `kind` get the list's (`SecretList` → `Secret`).
fn list_items_typed(mut list: Json) -> Json {
    let api_version = list.get("apiVersion").cloned().unwrap_or(Json::Null);
    let kind = list
        .get("kind")
        .and_then(Json::as_str)
        .map(|kind| Json::String(kind.strip_suffix("List").unwrap_or(kind).to_string()))
        .unwrap_or(Json::Null);
    if let Some(items) = list.get_mut("items").and_then(Json::as_array_mut) {
        for item in items {
            if let Some(object) = item.as_object_mut()
                && object
                    .get("apiVersion")
                    .is_none_or(|v| v.as_str() == Some(""))
                && object.get("kind").is_none_or(|v| v.as_str() == Some(""))
            {
                object.insert("apiVersion".to_string(), api_version.clone());
                object.insert("kind".to_string(), kind.clone());
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_follow_group_scope_and_name() {
        let secrets = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Secret"),
            "secrets",
        );
        assert_eq!(
            url_path(&secrets, Some("apps"), "tls"),
            "/api/v1/namespaces/apps/secrets/tls"
        );
        assert_eq!(
            url_path(&secrets, Some("apps"), ""),
            "/api/v1/namespaces/apps/secrets"
        );
        let roles = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            "clusterroles",
        );
        assert_eq!(
            url_path(&roles, None, "admin"),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin"
        );
    }

    #[test]
    fn list_items_get_the_lists_type() {
        let list = list_items_typed(json!({
            "apiVersion": "v1", "kind": "SecretList", "metadata": {},
            "items": [{"metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "Secret"}]
        }));
        assert_eq!(list["items"][0]["kind"], "Secret");
        assert_eq!(list["items"][0]["apiVersion"], "v1");
        assert_eq!(list["items"][1]["kind"], "Secret");
    }
}
