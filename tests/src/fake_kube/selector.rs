//! Label and field selectors, as the API server parses the `labelSelector`
//! and `fieldSelector` query parameters.
//!
//! Label selectors support every operator of the text form: `k=v`, `k==v`,
//! `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists) and `!k` (absent),
//! joined by commas. Field selectors support `metadata.name` and
//! `metadata.namespace` with `=`, `==` and `!=`, which is what the real server
//! accepts for every resource; other fields are rejected like there.

use std::collections::BTreeSet;

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    Absent(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the text form, or says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(Self { requirements })
    }

    /// Whether an object (its `metadata.labels`) satisfies every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => label(key) == Some(value.as_str()),
                Requirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
                Requirement::In(key, values) => label(key).is_some_and(|v| values.contains(v)),
                Requirement::NotIn(key, values) => !label(key).is_some_and(|v| values.contains(v)),
                Requirement::Exists(key) => label(key).is_some(),
                Requirement::Absent(key) => label(key).is_none(),
            })
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::Absent(valid_key(key.trim(), term)?));
    }
    for (word, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((key, set)) = term.split_once(word) {
            let key = valid_key(key.trim(), term)?;
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement {term:?}: expected (values)")
                })?;
            let values = inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect::<BTreeSet<_>>();
            if values.is_empty() {
                return Err(format!(
                    "unable to parse requirement {term:?}: empty value set"
                ));
            }
            return Ok(if is_in {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            });
        }
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            valid_key(key.trim(), term)?,
            value.trim().to_owned(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(
            valid_key(key.trim(), term)?,
            value.trim().to_owned(),
        ));
    }
    Ok(Requirement::Exists(valid_key(term, term)?))
}

fn valid_key(key: &str, term: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "unable to parse requirement {term:?}: invalid label key {key:?}"
        ))
    }
}

/// A parsed field selector over `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    /// (field pointer, value, wanted equal)
    requirements: Vec<(&'static str, String, bool)>,
}

impl FieldSelector {
    /// Parses the text form, or says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            let pointer = match field.trim() {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                other => {
                    return Err(format!("field label not supported: {other}"));
                }
            };
            requirements.push((pointer, value.trim().to_owned(), equal));
        }
        Ok(Self { requirements })
    }

    /// Whether an object satisfies every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(pointer, value, equal)| {
            let actual = object.pointer(pointer).and_then(Value::as_str);
            (actual == Some(value.as_str())) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_existence() {
        let obj = labelled(json!({"kubernetes.io/service-name": "greeter", "tier": "web"}));
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
        assert!(ok(""));
        assert!(ok("kubernetes.io/service-name=greeter"));
        assert!(ok("kubernetes.io/service-name==greeter,tier"));
        assert!(!ok("kubernetes.io/service-name=other"));
        assert!(ok("kubernetes.io/service-name!=other"));
        assert!(!ok("!tier"));
        assert!(ok("!missing"));
        assert!(!ok("missing"));
    }

    #[test]
    fn set_operators() {
        let obj = labelled(json!({"env": "prod"}));
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
        assert!(ok("env in (prod, staging)"));
        assert!(!ok("env notin (prod,staging)"));
        assert!(ok("env in (prod),other notin (a)"));
        assert!(!ok("other in (a)"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(LabelSelector::parse("env in prod").is_err());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(FieldSelector::parse("spec.nodeName=x").is_err());
    }

    #[test]
    fn field_selector() {
        let obj = labelled(json!({}));
        let ok = |s: &str| FieldSelector::parse(s).unwrap().matches(&obj);
        assert!(ok("metadata.name=x"));
        assert!(ok("metadata.namespace==ns,metadata.name!=y"));
        assert!(!ok("metadata.name!=x"));
    }
}
