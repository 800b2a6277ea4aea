//! Parses and normalizes image references the way the container runtime does (distribution's rules).

use std::fmt;

/// Docker Hub's canonical domain in normalized references.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const LEGACY_DOCKER_HUB_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// Why an image reference was rejected; always names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {0:?}: it is empty")]
    Empty(String),
    #[error("invalid image reference {value:?}: {reason}")]
    Invalid { value: String, reason: String },
    #[error(
        "invalid tag {0:?}: a tag is 1-128 characters of [A-Za-z0-9_.-] and cannot start with '.' or '-'"
    )]
    InvalidTag(String),
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX such as sha256:<64 hex digits>")]
    InvalidDigest(String),
}

/// A normalized image reference: `docker.io/library/nginx:1.25@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry domain as written in normalized references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/nginx`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `value` like `docker pull` does: `nginx` → `docker.io/library/nginx`.
    pub fn parse(value: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            return Err(ReferenceError::Empty(value.to_string()));
        }
        if value.trim() != value {
            return Err(invalid("it contains surrounding whitespace"));
        }
        let (rest, digest) = match value.split_once('@') {
            Some((rest, digest)) => {
                if !is_valid_digest(digest) {
                    return Err(ReferenceError::InvalidDigest(digest.to_string()));
                }
                (rest, Some(digest.to_string()))
            }
            None => (value, None),
        };
        // A tag follows the last ':' only when that ':' comes after the last '/' (else it is a port).
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                let tag = rest.get(colon + 1..).unwrap_or_default();
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::InvalidTag(tag.to_string()));
                }
                (rest.get(..colon).unwrap_or_default(), Some(tag.to_string()))
            }
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid("the repository name is empty"));
        }
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }
        let (domain, path) = split_domain(name);
        if !is_valid_domain(&domain) {
            return Err(invalid(&format!("{domain:?} is not a valid registry host")));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("the repository name must be lowercase"));
        }
        if !path.split('/').all(is_valid_path_component) {
            return Err(invalid(
                "each repository path component must be lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        let full_length = domain.len() + 1 + path.len();
        if full_length > MAX_NAME_LENGTH {
            return Err(invalid(&format!(
                "the repository name is longer than {MAX_NAME_LENGTH} characters"
            )));
        }
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The host (and port) that serves the distribution API for this image.
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB_DOMAIN {
            DOCKER_HUB_API_HOST
        } else {
            &self.domain
        }
    }

    /// `domain/path` without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag(tag.to_string()));
        }
        Ok(Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

/// Splits `name` into domain and path; the first component is a domain only when it looks like
/// one (contains '.' or ':', is `localhost`, or has uppercase letters), as distribution decides.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DOCKER_HUB_DOMAIN {
        DOCKER_HUB_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DOCKER_HUB_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

/// `host[:port]` where host is dot-separated DNS labels or a bracketed IPv6 address.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ipv6, after)) => {
                if ipv6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match after {
                    "" => return true,
                    _ => match after.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.is_empty() {
        // Only the bracketed IPv6 form reaches here with an empty host.
        return domain.starts_with('[');
    }
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// `[a-z0-9]+` runs joined by the separators `.`, `_`, `__` or any number of `-`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if bytes.get(index).is_some_and(alnum) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !bytes.get(index).is_some_and(alnum) {
            index += 1;
        }
        let separator = component.get(start..index).unwrap_or_default();
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LENGTH
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `algorithm:encoded` as in the OCI image spec; sha256/sha512 must have the exact hex length.
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            let bytes = part.as_bytes();
            bytes.first().is_some_and(u8::is_ascii_lowercase)
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    algorithm_ok
        && match algorithm {
            "sha256" => encoded.len() == 64 && hex(encoded),
            "sha512" => encoded.len() == 128 && hex(encoded),
            _ => {
                encoded.len() >= 32
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
            }
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_the_container_runtime() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("nginx", "docker.io", "library/nginx", None),
            ("nginx:1.25", "docker.io", "library/nginx", Some("1.25")),
            ("bitnami/redis:7", "docker.io", "bitnami/redis", Some("7")),
            (
                "index.docker.io/library/nginx",
                "docker.io",
                "library/nginx",
                None,
            ),
            ("docker.io/nginx", "docker.io", "library/nginx", None),
            ("ghcr.io/a/b/c:v1", "ghcr.io", "a/b/c", Some("v1")),
            ("localhost/app", "localhost", "app", None),
            ("localhost:5000/app:x", "localhost:5000", "app", Some("x")),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None),
            ("Registry/app", "Registry", "app", None),
            ("[::1]:5000/app:1", "[::1]:5000", "app", Some("1")),
            (
                "my-reg.example.com/a__b/c.d-e",
                "my-reg.example.com",
                "a__b/c.d-e",
                None,
            ),
        ];
        for (input, domain, path, tag) in cases {
            let image = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&image.domain, domain, "{input}");
            assert_eq!(&image.path, path, "{input}");
            assert_eq!(image.tag.as_deref(), *tag, "{input}");
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let image = ImageRef::parse(&format!("nginx:1.25@{DIGEST}")).expect("parses");
        assert_eq!(image.tag.as_deref(), Some("1.25"));
        assert_eq!(image.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            image.to_string(),
            format!("docker.io/library/nginx:1.25@{DIGEST}")
        );
        let image = ImageRef::parse(&format!("ghcr.io/x/y@{DIGEST}")).expect("parses");
        assert_eq!(image.tag, None);
        assert_eq!(image.registry_host(), "ghcr.io");
        assert_eq!(
            ImageRef::parse("nginx").expect("parses").registry_host(),
            DOCKER_HUB_API_HOST
        );
    }

    #[test]
    fn rejects_invalid_references_naming_the_value() {
        let bad = [
            "",
            " nginx",
            "Nginx",
            "docker.io/Library/nginx",
            "nginx:",
            "nginx:-bad",
            "nginx:.bad",
            "nginx@sha256:abc",
            "nginx@md5",
            "a//b",
            "a/b/",
            "-a/b",
            "host:port/app",
            "reg_istry.io/app",
            "app_/x",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1/app",
            "a/b..c",
            "a/b___c",
        ];
        for input in bad {
            let err = ImageRef::parse(input).expect_err(input);
            let message = err.to_string();
            assert!(
                message.contains("invalid"),
                "{input:?} gave an unclear error: {message}"
            );
        }
        let long_tag = format!("nginx:{}", "a".repeat(129));
        assert!(matches!(
            ImageRef::parse(&long_tag),
            Err(ReferenceError::InvalidTag(_))
        ));
        let long_name = format!("x.io/{}", "a".repeat(260));
        assert!(ImageRef::parse(&long_name).is_err());
    }

    #[test]
    fn tag_and_digest_grammar() {
        assert!(is_valid_tag("v1.2.3-rc.1_build"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag("a b"));
        assert!(!is_valid_tag("a\n"));
        assert!(is_valid_digest(DIGEST));
        assert!(!is_valid_digest("sha256:ABCDEF"));
        assert!(is_valid_digest(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        ));
    }

    /// Arbitrary input never panics, and whatever parses prints back to itself.
    #[test]
    fn parse_display_round_trip_on_noise() {
        let alphabet: Vec<char> = "ab9:/@._-A[]:sha256 \u{e9}".chars().collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            if let Ok(image) = ImageRef::parse(&text) {
                accepted += 1;
                let printed = image.to_string();
                assert_eq!(
                    ImageRef::parse(&printed).as_ref(),
                    Ok(&image),
                    "{text:?} → {printed:?}"
                );
            }
        }
        assert!(
            accepted > 0,
            "the noise should contain some valid references"
        );
    }

    #[test]
    fn with_tag_replaces_tag_and_drops_digest() {
        let image = ImageRef::parse(&format!("nginx:1@{DIGEST}")).expect("parses");
        let moved = image.with_tag("2").expect("valid tag");
        assert_eq!(moved.to_string(), "docker.io/library/nginx:2");
        assert!(image.with_tag("bad tag").is_err());
    }
}
