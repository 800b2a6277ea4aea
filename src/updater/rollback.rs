//! "Rollback sticks": after `helm rollback`, the tags introduced by the revisions that were rolled
//! back are not applied again; only a strictly newer tag moves the release forward. Everything is
//! derived from the Helm history itself, so there is no extra state to lose or keep in sync.

/// What the rollback logic needs to know of one revision, for one tracked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionImage {
    pub version: i64,
    /// `info.description` (Helm writes `Rollback to N`).
    pub description: String,
    /// Helm 4's `info.rollback_revision`, when present.
    pub rollback_revision: Option<i64>,
    /// The image's tag in this revision's values, when set.
    pub tag: Option<String>,
}

impl RevisionImage {
    /// The revision this one rolled back to, if it is a rollback.
    pub fn rollback_target(&self) -> Option<i64> {
        if let Some(target) = self.rollback_revision.filter(|v| *v > 0) {
            return Some(target);
        }
        self.description
            .strip_prefix("Rollback to ")
            .and_then(|rest| rest.trim().parse::<i64>().ok())
    }
}

/// The rollback that still governs the image, and the tags it undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The rollback revision.
    pub rollback: i64,
    /// The revision it returned to.
    pub target: i64,
    /// Tags the rolled-back revisions introduced (never the tag the rollback restored).
    pub tags: Vec<String>,
}

/// Finds the latest rollback after which nobody changed the image's tag, and the tags that
/// rollback undid. `history` may be in any order. `None` when no rollback holds the image back.
pub fn rolled_back_tags(history: &[RevisionImage]) -> Option<RolledBack> {
    let mut revisions: Vec<&RevisionImage> = history.iter().collect();
    revisions.sort_by_key(|r| r.version);
    let latest_tag = revisions.last()?.tag.clone();
    // Walk back while the tag is the one in force now; the first rollback met governs it.
    for revision in revisions.iter().rev() {
        if revision.tag != latest_tag {
            return None;
        }
        let Some(target) = revision.rollback_target() else {
            continue;
        };
        let mut tags: Vec<String> = Vec::new();
        for undone in revisions
            .iter()
            .filter(|r| r.version > target && r.version < revision.version)
        {
            if let Some(tag) = &undone.tag
                && Some(tag) != latest_tag.as_ref()
                && !tags.contains(tag)
            {
                tags.push(tag.clone());
            }
        }
        return (!tags.is_empty()).then_some(RolledBack {
            rollback: revision.version,
            target,
            tags,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(version: i64, description: &str, tag: &str) -> RevisionImage {
        RevisionImage {
            version,
            description: description.to_string(),
            rollback_revision: None,
            tag: Some(tag.to_string()),
        }
    }

    #[test]
    fn a_rollback_blocks_the_tags_it_undid() {
        let history = [
            rev(1, "Install complete", "3.4.5"),
            rev(2, "keelson: image.tag 3.4.5 → 4.5.6", "4.5.6"),
            rev(3, "Rollback to 1", "3.4.5"),
        ];
        assert_eq!(
            rolled_back_tags(&history),
            Some(RolledBack {
                rollback: 3,
                target: 1,
                tags: vec!["4.5.6".to_string()]
            })
        );
    }

    #[test]
    fn helm4_rollback_revision_field_counts_too() {
        let mut rollback = rev(3, "Rollback complete", "1");
        rollback.rollback_revision = Some(1);
        let history = [
            rev(1, "Install complete", "1"),
            rev(2, "Upgrade complete", "2"),
            rollback,
        ];
        assert_eq!(
            rolled_back_tags(&history).map(|r| r.tags),
            Some(vec!["2".to_string()])
        );
    }

    #[test]
    fn a_later_upgrade_that_keeps_the_tag_keeps_the_block() {
        let history = [
            rev(1, "Install complete", "1"),
            rev(2, "Upgrade complete", "2"),
            rev(3, "Rollback to 1", "1"),
            rev(4, "Upgrade complete", "1"),
        ];
        assert_eq!(rolled_back_tags(&history).map(|r| r.rollback), Some(3));
    }

    #[test]
    fn a_later_tag_change_ends_the_block() {
        let history = [
            rev(1, "Install complete", "1"),
            rev(2, "Upgrade complete", "2"),
            rev(3, "Rollback to 1", "1"),
            rev(4, "keelson: image.tag 1 → 3", "3"),
        ];
        assert_eq!(rolled_back_tags(&history), None);
    }

    #[test]
    fn nested_rollbacks_block_every_undone_tag() {
        let history = [
            rev(1, "Install complete", "a"),
            rev(2, "Upgrade complete", "b"),
            rev(3, "Upgrade complete", "c"),
            rev(4, "Rollback to 2", "b"),
            rev(5, "Rollback to 1", "a"),
        ];
        assert_eq!(
            rolled_back_tags(&history).map(|r| r.tags),
            Some(vec!["b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn no_rollback_no_block() {
        let history = [
            rev(1, "Install complete", "1"),
            rev(2, "Upgrade complete", "2"),
        ];
        assert_eq!(rolled_back_tags(&history), None);
    }
}
