//! The web dashboard at `/`: tracked releases with their policy, images and latest plan (the
//! tag they move to, or why they are held), pending approvals with their diff and approve /
//! reject buttons, and each release's newest revision as `helm history` shows it. Plain
//! server-rendered HTML; reading needs nothing, voting needs the webhook token (a login form
//! sets it as an HttpOnly, SameSite=Strict cookie, so other sites cannot vote with it).

use std::fmt::Write;

use super::Controller;

/// The cookie holding the token after a login.
pub const SESSION_COOKIE: &str = "keelson_session";

/// Text made safe for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #dde2ea;vertical-align:top}\
th{background:#f3f5f8}.held{color:#a15c00}.moves{color:#116b2e}.bad{color:#b3261e}\
pre{background:#f6f8fa;padding:.6rem;overflow:auto;max-height:20rem}\
.approval{border:1px solid #dde2ea;border-radius:6px;padding:.8rem;margin:.8rem 0}\
button{margin-right:.5rem;padding:.3rem .9rem}small{color:#5b6475}";

/// The whole page. `signed_in`: the visitor's cookie holds the token.
pub async fn page(controller: &Controller, signed_in: bool, message: Option<&str>) -> String {
    let mut html = String::new();
    let role = if *controller.leading.borrow() {
        "leader"
    } else {
        "standby"
    };
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>keelson</title><style>{STYLE}</style></head><body>\
         <h1>keelson <small>({role})</small></h1>"
    );
    if let Some(message) = message {
        let _ = write!(
            html,
            "<p id=\"message\"><strong>{}</strong></p>",
            escape(message)
        );
    }
    if !signed_in {
        html.push_str(
            "<form id=\"login\" method=\"post\" action=\"/ui/login\"><label>Token to approve or reject: \
             <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label> \
             <button type=\"submit\">Sign in</button></form>",
        );
    }

    let namespaces = controller.approval_namespaces();
    let store = crate::approvals::Approvals::new(controller.updater.client.clone());
    let mut pending = Vec::new();
    for namespace in namespaces {
        if let Ok(found) = store.list(Some(&namespace)).await {
            pending.extend(
                found
                    .into_iter()
                    .filter(|a| a.state == crate::approvals::State::Pending),
            );
        }
    }
    let mut releases = controller.releases.tracked();
    releases.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let plans = super::lock(&controller.last_plans).clone();
    let _ = write!(
        html,
        "<h2>Releases ({})</h2><table id=\"releases\"><tr><th>Release</th><th>Policy</th><th>Trigger</th>\
         <th>Image</th><th>Current</th><th>Next</th><th>Newest revision</th></tr>",
        releases.len()
    );
    for release in &releases {
        let key = (release.namespace.clone(), release.name.clone());
        let release_plans = plans.get(&key);
        for (index, image) in release.block.images.iter().enumerate() {
            let plan = release_plans.and_then(|p| p.get(index));
            // A request opened during the plan in flight shows before the plan's result does.
            let awaiting = pending.iter().find(|a| {
                a.namespace == release.namespace
                    && a.release == release.name
                    && a.image == image.repository
            });
            let next = match (plan, awaiting) {
                (Some(p), _) if p.reason.is_some() && p.target.is_none() => format!(
                    "<span class=\"held\">{}</span>",
                    escape(p.reason.as_deref().unwrap_or_default())
                ),
                (_, Some(approval)) => format!(
                    "<span class=\"held\">approval required: {} of {} approvals for {} (keelson approve {})</span>",
                    approval.votes.len(),
                    approval.required,
                    escape(&approval.target),
                    escape(&approval.id)
                ),
                (plan, None) => match plan {
                    Some(p) if p.target.is_some() => format!(
                        "<span class=\"moves\">{}</span>",
                        escape(p.target.as_deref().unwrap_or_default())
                    ),
                    Some(p) => match &p.reason {
                        Some(reason) => format!("<span class=\"held\">{}</span>", escape(reason)),
                        None => "up to date".to_string(),
                    },
                    None => "<small>not checked yet</small>".to_string(),
                },
            };
            let current = match &image.tag {
                Some(tag) => format!("{}:{tag}", image.repository),
                None => image.repository.clone(),
            };
            let _ = write!(
                html,
                "<tr><td>{}/{}</td><td>{}</td><td>{} <small>{}</small></td><td>{}</td><td>{}</td><td>{next}</td>\
                 <td>{} {} <small>{}</small><br><small>{}</small></td></tr>",
                escape(&release.namespace),
                escape(&release.name),
                escape(image.effective_policy(&release.block)),
                release.block.trigger,
                escape(release.block.poll_schedule()),
                escape(&image.repository_path.to_string()),
                escape(&current),
                release.version,
                escape(release.status.as_str()),
                escape(&release.updated),
                escape(&release.description),
            );
        }
    }
    html.push_str("</table>");
    let invalid = controller.releases.invalid();
    if !invalid.is_empty() {
        html.push_str("<h2>Releases with a refused keel block</h2><table id=\"invalid\"><tr><th>Release</th><th>Why</th></tr>");
        for ((namespace, name), reason) in invalid {
            let _ = write!(
                html,
                "<tr><td>{}/{}</td><td class=\"bad\">{}</td></tr>",
                escape(&namespace),
                escape(&name),
                escape(&reason)
            );
        }
        html.push_str("</table>");
    }

    let _ = write!(html, "<h2>Pending approvals ({})</h2>", pending.len());
    for approval in &pending {
        let id = escape(&approval.id);
        let _ = write!(
            html,
            "<div class=\"approval\" data-id=\"{id}\"><strong>{}</strong>: {} → {} \
             <small>{} of {} approvals, until {}</small>",
            escape(&approval.subject),
            escape(&approval.current),
            escape(&approval.target),
            approval.votes.len(),
            approval.required,
            escape(&approval.deadline),
        );
        if !approval.diff.is_empty() {
            let _ = write!(html, "<pre>{}</pre>", escape(&approval.diff));
        }
        if signed_in {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/ui/vote\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <label>Voter <input name=\"voter\" value=\"dashboard\"></label> \
                 <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
                 <button type=\"submit\" name=\"action\" value=\"reject\">Reject</button></form>"
            );
        }
        html.push_str("</div>");
    }
    html.push_str("</body></html>");
    html
}

/// Reads `application/x-www-form-urlencoded` fields.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The session cookie's value (URL-decoded), if the request carries one.
pub fn session_token(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| {
                url::form_urlencoded::parse(format!("t={value}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_reads_forms_and_cookies() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            form_fields(b"id=ns%2Fkeelson-approval-web-1&action=approve"),
            vec![
                ("id".to_string(), "ns/keelson-approval-web-1".to_string()),
                ("action".to_string(), "approve".to_string())
            ]
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=b; keelson_session=tok"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }
}
