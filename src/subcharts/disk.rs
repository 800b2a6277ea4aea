//! The on-disk cache of dependency archives: `archives/sha256-<hex>.tgz` by content digest, and
//! `refs/<hex>` naming the digest of (repository, name, version), so a restarted keelson
//! fetches nothing it fetched before. A cached archive is checked against its digest on every
//! read; a damaged one is a miss. Failing to write the cache only costs a later download.

use std::path::{Path, PathBuf};

use super::{Wanted, sha256_digest};

#[derive(Debug, Clone)]
pub struct DiskCache {
    root: PathBuf,
}

impl DiskCache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn ref_path(&self, wanted: &Wanted) -> PathBuf {
        let key = format!("{}\n{}\n{}", wanted.repository, wanted.name, wanted.version);
        let digest = sha256_digest(key.as_bytes());
        self.root
            .join("refs")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn archive_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.root.join("archives").join(format!("sha256-{hex}.tgz")))
    }

    /// The cached digest and archive of `wanted`, when both are there and agree.
    pub async fn read(&self, wanted: &Wanted) -> Option<(String, Vec<u8>)> {
        let digest = tokio::fs::read_to_string(self.ref_path(wanted))
            .await
            .ok()?;
        let digest = digest.trim().to_string();
        let path = self.archive_path(&digest)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        if bytes.len() > super::MAX_ARCHIVE_BYTES {
            return None;
        }
        Some((digest, bytes))
    }

    /// Stores a verified archive (written to a temporary name, then renamed, so a reader
    /// never sees half a file).
    pub async fn write(&self, wanted: &Wanted, digest: &str, bytes: &[u8]) {
        let Some(archive) = self.archive_path(digest) else {
            return;
        };
        let reference = self.ref_path(wanted);
        let result = async {
            write_atomically(&archive, bytes).await?;
            write_atomically(&reference, digest.as_bytes()).await
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(dir = %self.root.display(), dependency = %wanted, error = %err, "cannot write the chart cache");
        }
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_damaged_entries() {
        let root = std::env::temp_dir().join(format!("keelson-chart-cache-{}", std::process::id()));
        let cache = DiskCache::new(root.clone());
        let wanted = Wanted {
            repository: "https://charts.example".into(),
            name: "web".into(),
            version: "1.0.0".into(),
        };
        assert!(cache.read(&wanted).await.is_none());
        let digest = sha256_digest(b"archive");
        cache.write(&wanted, &digest, b"archive").await;
        assert_eq!(
            cache.read(&wanted).await,
            Some((digest.clone(), b"archive".to_vec()))
        );
        let other = Wanted {
            version: "1.0.1".into(),
            ..wanted.clone()
        };
        assert!(cache.read(&other).await.is_none());
        std::fs::remove_dir_all(&root).unwrap_or_default();
    }
}
